import json

import pytest

from dyndis_learn.cli import main

from .conftest import TINY


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({k: v for k, v in TINY.items() if k not in ("env_id", "steps")}))
    return path


@pytest.mark.slow
def test__train_evaluate_report(tmp_path, config_file, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--env",
                "DynDis/GridWorld-v0",
                "--config",
                str(config_file),
                "--steps",
                "3",
                "--seed",
                "1",
                "--latent-dim",
                "4",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    for name in (
        "checkpoint.safetensors",
        "config.json",
        "train_log.csv",
        "report.json",
        "report.md",
        "training_curves.png",
        "angles.png",
        "rollout_bce.png",
        "rollout.gif",
    ):
        assert (run / name).is_file(), name
    report = json.loads((run / "report.json").read_text())
    assert report["training"]["steps"] == 3 and report["training"]["config"]["seed"] == 1
    assert "criteria: single_plane=" in capsys.readouterr().out

    assert main(["train", "--out", str(run), "--resume", "--steps", "5", "--quiet", "--no-report"]) == 0
    assert main(["evaluate", "--run", str(run), "--episodes", "2", "--horizon", "6"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["horizon"] == 6 and len(evaluation["rollout_bce"]["k"]) == 7
    assert main(["report", "--run", str(run), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.md").is_file()


def test__errors_are_reported_not_raised(tmp_path, config_file, capsys):
    assert main(["train", "--out", str(tmp_path), "--resume"]) == 2
    assert "--resume: no checkpoint at" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--config", str(config_file), "--latent-dim", "1"]) == 2
    assert "ModelConfig.latent_dim must be an integer >= 2, got 1." in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path), "--env-kwargs", "[1]"])
    assert "expected a JSON object" in capsys.readouterr().err
