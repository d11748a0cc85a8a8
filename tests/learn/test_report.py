import dataclasses
import json
import math
import subprocess

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

from dyndis_learn import EvalConfig
from dyndis_learn import report as report_module
from dyndis_learn.devices import processor_name
from dyndis_learn.evaluate import collect_eval_episodes, evaluate_model
from dyndis_learn.metrics import summary
from dyndis_learn.model import WorldModel
from dyndis_learn.remedies import remedies
from dyndis_learn.report import (
    PROVENANCE_PACKAGES,
    angles_figure,
    git_commit,
    provenance,
    report_metrics,
    rollout_bce_at,
    rollout_bce_figure,
    rollout_strip,
    tensorboard_scalars,
    training_curves_figure,
    write_report,
)
from dyndis_learn.results import CRITERIA, ActionStructure, Evaluation, FactorStructure, TrainingSummary
from tests.learn.fixtures import TINY_ENV_ID, TINY_ENV_KWARGS

EVAL = EvalConfig(episodes=2, horizon=12, gif_steps=4)
FILES = ["training_curves.png", "angles.png", "rollout_bce.png", "rollout.gif", "report.md"]


@pytest.fixture(scope="module")
def run():
    torch.manual_seed(0)
    model = WorldModel((16, 16, 3), 4, latent_dim=4, channels=(8, 8), hidden_dim=32)
    episodes = collect_eval_episodes(TINY_ENV_ID, TINY_ENV_KWARGS, EVAL)
    evaluation = evaluate_model(model, TINY_ENV_ID, TINY_ENV_KWARGS, EVAL, episodes=episodes)
    return model, episodes, evaluation


def test__report_json_is_the_evaluation_plus_report_keys(tmp_path, run):
    model, episodes, evaluation = run
    trained = dataclasses.replace(evaluation, training=TrainingSummary(6, 1.25, {"seed": 0}))
    history = [{"step": 1, "loss": 0.5, "min_plane_share": 0.4}, {"step": 2, "loss": 0.4, "min_plane_share": 0.5}]
    path = write_report(tmp_path, model, trained, history, episodes.batch, EVAL.gif_steps)
    assert path == tmp_path / "report.json"
    report = json.loads(path.read_text())
    expected = trained.to_dict()
    training = expected.pop("training")
    extra = {"metrics": report_metrics(model, trained), "provenance": report["provenance"]}
    assert report == json.loads(
        json.dumps(
            {**expected, "rollout_bce_at": rollout_bce_at(trained), "training": training, **extra, "files": FILES}
        )
    )
    assert report["rollout_bce_at"] == {
        "1": evaluation.rollout_bce.mean_at(1),
        "10": evaluation.rollout_bce.mean[10],
        "12": evaluation.rollout_bce.mean_at(12),
    }
    assert Evaluation.from_dict(report) == trained
    for name in FILES:
        assert (tmp_path / name).is_file(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*FILES, "report.json"])  # no temporary files left
    markdown = (tmp_path / "report.md").read_text()
    assert "- training: 6 steps, 1.2 s\n" in markdown  # a config that does not say its precision
    for name in (*CRITERIA, "all"):
        assert f"| {name} | {trained.criteria.to_dict()[name]} |" in markdown
    advice = remedies(trained)
    assert advice and "What to change:" in markdown  # an untrained model fails some criteria
    for names, text in advice:
        assert f"- {', '.join(f'`{name}`' for name in names)}: {text}" in markdown
    assert "| 0 | north_south | +1 | (" in markdown
    fid = evaluation.fidelity
    assert report["fidelity"]["probe_r2"] == list(fid.probe_r2) and report["mean_image_bce"] > 0
    assert f"- encoder: circular-probe R^2 on 25 states: north_south {fid.probe_r2[0]:.4f}" in markdown
    assert "- decoder: nearest own state's image (all states as candidates) for " in markdown
    assert "of imagined frames k=2, 3, .., 12 of 320 rollouts from sampled states, " in markdown
    assert f"- mean image: BCE {evaluation.mean_image_bce:.4f} at k=12" in markdown
    assert "dynamics weight" not in markdown  # no history given


@pytest.mark.parametrize(("bf16", "text"), [(True, "1.2 s, bfloat16 autocast"), (False, "1.2 s, float32")])
def test__report_md_says_the_precision_the_run_trained_in(tmp_path, run, bf16, text):
    model, episodes, evaluation = run
    trained = dataclasses.replace(evaluation, training=TrainingSummary(6, 1.25, {"seed": 0, "bf16": bf16}))
    write_report(tmp_path, model, trained, [], episodes.batch, EVAL.gif_steps)
    assert f"- training: 6 steps, {text}\n" in (tmp_path / "report.md").read_text()


def test__report_without_training_or_history(tmp_path, run):
    model, episodes, evaluation = run
    write_report(tmp_path, model, evaluation, [], episodes.batch, EVAL.gif_steps)
    report = json.loads((tmp_path / "report.json").read_text())
    assert "training" not in report
    assert not (tmp_path / "training_curves.png").exists()  # nothing to plot
    assert "- training:" not in (tmp_path / "report.md").read_text()
    assert Evaluation.from_dict(report) == evaluation


def test__report_of_an_env_without_action_effects(tmp_path, run):
    model, episodes, evaluation = run
    blind = dataclasses.replace(
        evaluation,
        actions=tuple(
            ActionStructure(a.action, a.dominant_plane, a.plane_share, a.angle, a.angles) for a in evaluation.actions
        ),
        factors=None,
        disjoint_planes=None,
        criteria=dataclasses.replace(evaluation.criteria, faithful_angles=None, disjoint_planes=None),
    )
    write_report(tmp_path, model, blind, [], episodes.batch, EVAL.gif_steps)
    report = json.loads((tmp_path / "report.json").read_text())
    assert "factor" not in report["actions"][0] and report["factors"] is None
    assert report["criteria"]["all"] is False
    assert " rad | | | |" in (tmp_path / "report.md").read_text()


def _uniform_evaluation(evaluation):
    """The evaluation as if each factor's actions rotated exactly two axes: north_south (0,1), east_west (2,3)."""
    factors = tuple(
        dataclasses.replace(f, coordinates=coordinates)
        for f, coordinates in zip(evaluation.factors, ((0, 1), (2, 3)), strict=True)
    )
    return dataclasses.replace(evaluation, factors=factors)


@torch.no_grad()
def _grid_encodings(model):
    env = gym.make(TINY_ENV_ID, **TINY_ENV_KWARGS)
    try:
        core = env.unwrapped
        states = core.factor_space.all_states()
        images = core.render_states(states)
        columns = [list(core.factor_space.names).index(name) for name in ("north_south", "east_west")]
    finally:
        env.close()
    return states[:, columns], model.encode(torch.from_numpy(images)).numpy()


def test__metrics_are_the_summary_on_every_state_in_the_factor_structures_planes(run):
    model, _, evaluation = run
    uniform = _uniform_evaluation(evaluation)
    metrics = report_metrics(model, uniform, seed=3)
    states, encodings = _grid_encodings(model)
    expected = summary(
        encodings, states, [5, 5], planes=[[0, 1], [2, 3]], dci_importance="logistic", num_train=13, num_test=12, seed=3
    )
    assert metrics == {
        "states": 25,
        "grid": True,
        "factors": ["north_south", "east_west"],
        "cycle_lengths": [5, 5],
        "planes": [[0, 1], [2, 3]],
        "num_train": 13,
        "num_test": 12,
        "dci_importance": "logistic",
        "seed": 3,
        **json.loads(json.dumps(expected.to_dict())),
    }
    assert metrics["planes_given"] is True


def test__metrics_find_planes_when_a_factor_does_not_rotate_exactly_two_axes(run):
    model, _, evaluation = run
    odd = dataclasses.replace(
        evaluation, factors=(FactorStructure("north_south", 5, (0, 1), (0, 1, 2)), *evaluation.factors[1:])
    )
    metrics = report_metrics(model, odd)
    assert metrics["planes"] is None and metrics["planes_given"] is False
    assert len(metrics["d_lsbd"]["per_factor"]) == 2 and len(metrics["probe_r2"]) == 2


def test__metrics_of_a_large_world_use_a_bounded_sample(run, monkeypatch):
    model, _, evaluation = run
    monkeypatch.setattr("dyndis_learn.fidelity.GRID_STATES", 10)  # 25 states count as a large world
    monkeypatch.setattr("dyndis_learn.fidelity.SAMPLE_STATES", 40)
    metrics = report_metrics(model, _uniform_evaluation(evaluation), seed=5)
    assert metrics["grid"] is False and metrics["states"] == 40
    assert (metrics["num_train"], metrics["num_test"]) == (20, 20)


def test__metrics_without_the_evaluation_contract_are_none(run):
    model, _, evaluation = run
    assert report_metrics(model, dataclasses.replace(evaluation, env_id="DynDis/NoSuchEnv-v0")) is None

    class Plain:  # an environment without factor_space / render_states
        unwrapped = None

    assert report_metrics(model, evaluation, env=Plain()) is None


def test__report_md_has_the_metrics_table_and_provenance(tmp_path, run):
    model, episodes, evaluation = run
    uniform = _uniform_evaluation(evaluation)
    write_report(tmp_path, model, uniform, [], episodes.batch, EVAL.gif_steps)
    report = json.loads((tmp_path / "report.json").read_text())
    markdown = (tmp_path / "report.md").read_text()
    metrics = report["metrics"]
    d = metrics["d_lsbd"]
    assert "## Metrics" in markdown and "On 25 states (every state), in the factor structure's planes" in markdown
    assert f"| north_south | 5 | (0,1) | {d['per_factor'][0]:.3f} | {d['frequencies'][0]} |" in markdown
    assert f"| east_west | 5 | (2,3) | {d['per_factor'][1]:.3f} |" in markdown
    assert f"| **mean** (sum) | | | **{d['value']:.3f}** ({d['total']:.3f}) | | |" in markdown
    for label, group, key in (
        ("MIG", "mig", "value"),
        ("DCI disentanglement", "dci", "disentanglement"),
        ("DCI completeness", "dci", "completeness"),
        ("DCI informativeness (test accuracy)", "dci", "informativeness_test"),
        ("SAP", "sap", "value"),
        ("modularity", "modularity", "modularity"),
        ("FactorVAE score", "factor_vae", "eval_accuracy"),
    ):
        raw, angles = metrics["raw"][group][key], metrics["angles"][group][key]
        assert f"| {label} | {raw:.3f} | {angles:.3f} |" in markdown
    assert "## Provenance" in markdown and f"- git commit: {report['provenance']['git_commit'] or 'n/a'}" in markdown
    assert f"; processor: {report['provenance']['processor'] or 'n/a'}; Python " in markdown
    blind = dataclasses.replace(evaluation, env_id="DynDis/NoSuchEnv-v0")
    write_report(tmp_path / "blind", model, blind, [], episodes.batch, EVAL.gif_steps)
    assert json.loads((tmp_path / "blind" / "report.json").read_text())["metrics"] is None
    assert "Not measured: the environment has no evaluation contract" in (tmp_path / "blind" / "report.md").read_text()


def test__provenance(run):
    model = run[0]
    origin = provenance(model, seed=4, evaluation_seed=9)
    assert set(origin) == {
        "packages",
        "git_commit",
        "seed",
        "evaluation_seed",
        "date",
        "device",
        "processor",
        "python",
        "command",
    }
    assert origin["processor"] == processor_name()
    assert list(origin["packages"]) == list(PROVENANCE_PACKAGES)
    assert origin["packages"]["dyndis-learn"] and origin["packages"]["numpy"] == np.__version__
    assert origin["seed"] == 4 and origin["evaluation_seed"] == 9 and origin["device"] == "cpu"
    assert origin["date"].endswith("+00:00")
    commit = origin["git_commit"]
    assert commit is None or (len(commit) == 40 and int(commit, 16) >= 0)


def test__git_commit_is_none_outside_a_checkout_or_when_git_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit(tmp_path) is None  # not a repository
    assert git_commit(tmp_path / ".venv" / "lib" / "site-packages" / "dyndis_learn") is None  # an install

    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired("git", 5)

    for broken in (missing, slow):
        monkeypatch.setattr(report_module.subprocess, "run", broken)
        assert git_commit() is None


def test__training_curves_plot_the_used_terms_and_mark_the_warm_up():
    history = [
        {"step": s, "loss": 1.0 / s, "autoencoder_bce": 0.5 / s, "whitening": 0.0, "min_plane_share": 0.5}
        for s in range(1, 9)
    ]
    fig = training_curves_figure(history, warmup_steps=4)
    try:
        ax_loss = fig.axes[0]
        labels = [line.get_label() for line in ax_loss.get_lines()]
        assert "loss" in labels and "autoencoder_bce" in labels
        assert "whitening" not in labels and "rollout_bce" not in labels  # all 0 or absent: not used
        for ax in fig.axes:
            assert ax.get_xlabel() == "step" and ax.get_ylabel()
            marks = [line for line in ax.get_lines() if line.get_label() == "end of warm-up"]
            assert len(marks) == 1 and list(marks[0].get_xdata()) == [4, 4]
    finally:
        report_module.plt.close(fig)
    fig = training_curves_figure(history, warmup_steps=None)
    try:
        assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "end of warm-up"]
    finally:
        report_module.plt.close(fig)


def test__training_curves_leave_out_the_terms_the_warm_up_only_logged():
    history = [
        {"step": s, "loss": 1.0 / s, "smoothness": 0.3, "whitening": 0.2, "target": 0.1 / s, "min_plane_share": 1}
        for s in range(1, 9)
    ]
    fig = training_curves_figure(history, warmup_steps=4, warmup_terms=("target",))
    try:
        labels = [line.get_label() for line in fig.axes[0].get_lines()]
        assert "target" in labels and "smoothness" not in labels and "whitening" not in labels
    finally:
        report_module.plt.close(fig)


def test__angle_bars_have_plane_labels_and_reference_lines(run):
    evaluation = run[2]
    fig = angles_figure(evaluation)
    try:
        used = fig.axes[: len(evaluation.actions)]
        for ax, action in zip(used, evaluation.actions, strict=True):
            ticks = [t.get_text() for t in ax.get_xticklabels()]
            assert ticks == ["(0,1)", "(0,2)", "(0,3)", "(1,2)", "(1,3)", "(2,3)"]
            assert ax.get_xlabel() == "plane (i,j)" and ax.get_ylabel() == "angle (rad)"
            levels = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
            unit = 2 * math.pi / action.cycle_length
            np.testing.assert_allclose(levels, [-unit, unit])
    finally:
        report_module.plt.close(fig)
    fig = rollout_bce_figure(evaluation)
    try:
        assert fig.axes[0].get_xlabel() == "rollout step k" and fig.axes[0].get_ylabel()
    finally:
        report_module.plt.close(fig)


def test__gif_frames_are_labelled_with_the_panels_and_the_step(tmp_path, run):
    model, episodes, evaluation = run
    write_report(tmp_path, model, evaluation, [], episodes.batch, EVAL.gif_steps)
    strip = report_module._STRIP
    with Image.open(tmp_path / "rollout.gif") as gif:
        assert gif.n_frames == EVAL.gif_steps
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("L")))
    height, width = frames[0].shape
    assert (width, height) == (2 * 16 * 8 + 2 * 8, 16 * 8 + 2 * strip)  # two 8x panels, the gap, two strips
    for frame in frames:
        top = frame[:strip]
        assert (top[:, : 16 * 8] < 128).any() and (top[:, 16 * 8 + 16 :] < 128).any()  # both captions drawn
    bottoms = [frame[-strip:] for frame in frames]
    assert all((b < 128).any() for b in bottoms)
    assert len({b.tobytes() for b in bottoms}) == len(bottoms)  # the step counter changes


def test__progress_lines_only_when_asked(tmp_path, run, capsys):
    model, episodes, evaluation = run
    write_report(tmp_path, model, evaluation, [], episodes.batch, EVAL.gif_steps)
    assert capsys.readouterr().err == ""
    write_report(tmp_path, model, evaluation, [], episodes.batch, EVAL.gif_steps, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "report: [1/3] representation metrics on the evaluation states ..."
    assert any(line.startswith("report: [3/3] rollout GIF") for line in err)
    assert err[-1].startswith(f"report: wrote {tmp_path} in ")


def test__tensorboard_gets_the_evaluation_figures_and_a_rollout_image_at_the_training_step(tmp_path, run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, episodes, evaluation = run
    trained = dataclasses.replace(evaluation, training=TrainingSummary(6, 1.25, {"seed": 0}))
    path = write_report(tmp_path, model, trained, [], episodes.batch, EVAL.gif_steps, tensorboard=True)
    report = json.loads(path.read_text())
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    scalars = {tag: events.Scalars(tag) for tag in tags["scalars"]}
    assert scalars.keys() == tensorboard_scalars(report).keys()
    assert scalars["eval/rollout_bce/k=1"][0].value == pytest.approx(report["rollout_bce_at"]["1"])
    assert scalars["eval/rollout_bce/k=1"][0].step == 6
    assert scalars["eval/criteria/all"][0].value == float(report["criteria"]["all"])
    assert {"eval/fidelity/probe_r2/north_south", "eval/metrics/d_lsbd", "eval/metrics/angles/mig/value"} <= set(
        scalars
    )
    (image,) = events.Images("eval/rollout")
    assert image.step == 6 and (image.width, image.height) == (4 * 16, 2 * 16 + 2)  # 4 frames; truth, gap, imagined
    write_report(tmp_path / "plain", model, trained, [], episodes.batch, EVAL.gif_steps)
    assert not (tmp_path / "plain" / "tensorboard").exists()  # off by default


def test__rollout_strip_shows_the_ground_truth_above_the_imagined_frames(run):
    model, episodes, _ = run
    strip = rollout_strip(model, episodes.batch, 3)
    assert strip.shape == (2 * 16 + 2, 3 * 16, 3) and strip.dtype == np.uint8
    np.testing.assert_array_equal(strip[:16, :16], episodes.batch.observations[0, 0])
    assert (strip[16:18] == 255).all()
