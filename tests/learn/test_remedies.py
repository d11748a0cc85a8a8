"""What to change for each failed criterion (dyndis_learn.remedies), in the summary and the report."""

from __future__ import annotations

import dataclasses

from dyndis_learn.config import TrainConfig
from dyndis_learn.remedies import remedies
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


def test__remedies__none_where_every_criterion_holds_or_cannot_be_judged():
    assert remedies(_evaluation()) == {}
    assert remedies(_evaluation(single_plane=None, faithful_angles=None, disjoint_planes=None)) == {}


def test__remedies__name_the_setting_of_each_failed_criterion_in_the_criteria_order():
    advice = remedies(_evaluation(decoder_fidelity=False, single_plane=False, rollout_stable=False))
    assert list(advice) == ["single_plane", "rollout_stable", "decoder_fidelity"]
    assert "`warmup.steps`" in advice["single_plane"] and "Cars3D 8,000 / 4,000" in advice["single_plane"]
    assert all("train longer (`steps`" in text for text in advice.values())


def test__remedies__say_where_the_dynamics_ramp_ends_for_a_run_stopped_before_it():
    training = TrainingSummary(100, 1.0, TrainConfig(steps=100).to_dict())  # warm-up 150, ramp 75 by default
    advice = remedies(_evaluation(training=training, dynamics_trained=False))["dynamics_trained"]
    assert advice.endswith("(100 steps taken, the ramp ends at step 225)")
    bare = remedies(_evaluation(training=TrainingSummary(100, 1.0, {}), dynamics_trained=False))
    assert bare["dynamics_trained"].endswith("`optim.dynamics_ramp_steps`")  # a config without the keys


def test__remedies__point_to_the_walk_where_only_unseen_states_miss_the_probe():
    unseen_only = _evaluation(_fidelity(seen=(1.0, 0.999), unseen=(0.995, 0.95)), encoder_fidelity=False)
    assert "`warmup.cycles.walk_steps`" in remedies(unseen_only)["encoder_fidelity"]
    both = _evaluation(_fidelity(seen=(0.98, 0.999), unseen=(0.995, 0.95)), encoder_fidelity=False)
    assert "walk_steps" not in remedies(both)["encoder_fidelity"]


def test__format_summary__ends_with_what_to_change():
    evaluation = _evaluation(decoder_fidelity=False)
    lines = format_summary(evaluation).splitlines()
    assert lines[-1] == f"to mend decoder_fidelity: {remedies(evaluation)['decoder_fidelity']}"
    assert not format_summary(dataclasses.replace(evaluation, criteria=_evaluation().criteria)).count("to mend")
