import dataclasses
import json

import pytest
import torch

from dyndis_learn import EvalConfig
from dyndis_learn.evaluate import collect_eval_episodes, evaluate_model
from dyndis_learn.model import WorldModel
from dyndis_learn.report import rollout_bce_at, write_report
from dyndis_learn.results import CRITERIA, ActionStructure, Evaluation, TrainingSummary
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
    assert report == json.loads(
        json.dumps({**expected, "rollout_bce_at": rollout_bce_at(trained), "training": training, "files": FILES})
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
    assert "- training: 6 steps, 1.2 s" in markdown
    for name in (*CRITERIA, "all"):
        assert f"| {name} | {trained.criteria.to_dict()[name]} |" in markdown
    assert "| 0 | north_south | +1 | (" in markdown
    fid = evaluation.fidelity
    assert report["fidelity"]["probe_r2"] == list(fid.probe_r2) and report["mean_image_bce"] > 0
    assert f"- encoder: circular-probe R^2 on 25 states (every state): north_south {fid.probe_r2[0]:.4f}" in markdown
    assert "- decoder: nearest own state's image (all states as candidates) for " in markdown
    assert "of imagined frames k=1..12, " in markdown
    assert f"- mean image: BCE {evaluation.mean_image_bce:.4f} at k=12" in markdown
    assert "dynamics weight" not in markdown  # no history given


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
