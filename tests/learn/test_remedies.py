"""What to change for each failed criterion (dyndis_learn.remedies), in the summary and the report."""

from __future__ import annotations

from dyndis_learn.config import TrainConfig
from dyndis_learn.remedies import remedies, remedy_lines
from dyndis_learn.results import (
    CRITERIA,
    Criteria,
    Evaluation,
    Fidelity,
    RolloutError,
    StateSetFidelity,
    TrainingSummary,
    format_summary,
)


def _evaluation(fidelity=None, training=None, **checks):
    values = dict.fromkeys(CRITERIA, True)
    criteria = Criteria(**{**values, **checks}, share_threshold=0.99, angle_tolerance=0.01, bce_ratio_limit=1.2)
    return Evaluation(
        env_id="DynDis/Cars3D-v0",
        env_kwargs={},
        latent_dim=6,
        n_actions=6,
        rollout_bce=RolloutError((1, 5), (0.1, 0.1), (0.1, 0.1), (0.1, 0.1), 1),
        rollout_bce_ratio=1.0,
        horizon=5,
        actions=(),
        factors=None,
        disjoint_planes=None,
        criteria=criteria,
        fidelity=fidelity,
        training=training,
    )


def _fidelity(seen, unseen):
    return Fidelity(
        states=100,
        grid=False,
        candidates="one_factor_neighbours",
        factors=("a", "b"),
        probe_r2=(0.999, 0.995),
        reconstruction_rate=1.0,
        imagined_steps=4,
        imagined_rate=1.0,
        imagined_rate_last=1.0,
        seen_fraction=0.5,
        seen=StateSetFidelity(100, seen, 1.0),
        unseen=StateSetFidelity(100, unseen, 1.0),
    )


def _advice(evaluation):
    return {name: text for names, text in remedies(evaluation) for name in names}


def test__remedies__none_where_every_criterion_holds_or_cannot_be_judged():
    assert remedies(_evaluation()) == []
    assert remedies(_evaluation(single_plane=None, faithful_angles=None, disjoint_planes=None)) == []


def test__remedies__name_the_setting_of_each_failed_criterion_once_in_the_criteria_order():
    advice = remedies(
        _evaluation(decoder_fidelity=False, single_plane=False, disjoint_planes=False, rollout_stable=False)
    )
    assert [names for names, _ in advice] == [
        ("single_plane", "disjoint_planes"),
        ("rollout_stable",),
        ("decoder_fidelity",),
    ]
    structure = advice[0][1]
    assert "`warmup.steps`" in structure and "Cars3D 7,200 / 3,600" in structure
    assert all("train longer (`steps`" in text for _, text in advice)


def test__remedies__say_where_the_dynamics_ramp_ends_for_a_run_stopped_before_it():
    stored = TrainConfig(steps=100, warmup={"steps": 150}).to_dict()  # as a trainer stores it; ramp 75 by default
    training = TrainingSummary(100, 1.0, stored)
    advice = _advice(_evaluation(training=training, dynamics_trained=False))["dynamics_trained"]
    assert advice.endswith("(100 steps taken, the ramp ends at step 225)")
    none = TrainingSummary(50, 1.0, TrainConfig(steps=50, warmup={"kind": "none", "steps": 150}).to_dict())  # 0 steps
    assert _advice(_evaluation(training=none, dynamics_trained=False))["dynamics_trained"].endswith("ends at step 75)")
    bare = _advice(_evaluation(training=TrainingSummary(100, 1.0, {}), dynamics_trained=False))
    assert bare["dynamics_trained"].endswith("`optim.dynamics_ramp_steps`")  # a config without the keys


def test__remedies__point_to_the_walk_where_only_unseen_states_miss_the_probe():
    unseen_only = _evaluation(_fidelity(seen=(1.0, 0.999), unseen=(0.995, 0.95)), encoder_fidelity=False)
    assert "`warmup.cycles.walk_steps`" in _advice(unseen_only)["encoder_fidelity"]
    both = _evaluation(_fidelity(seen=(0.98, 0.999), unseen=(0.995, 0.95)), encoder_fidelity=False)
    assert "walk_steps" not in _advice(both)["encoder_fidelity"]


def test__remedy_lines__one_per_change_and_none_when_all_hold():
    evaluation = _evaluation(single_plane=False, faithful_angles=False, decoder_fidelity=False)
    advice = _advice(evaluation)
    assert remedy_lines(evaluation) == [
        f"to mend single_plane, faithful_angles: {advice['single_plane']}",
        f"to mend decoder_fidelity: {advice['decoder_fidelity']}",
    ]
    assert remedy_lines(_evaluation()) == []
    assert "to mend" not in format_summary(evaluation)  # the terminal prints them after the summary (cli)
