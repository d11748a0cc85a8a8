import errno
import json
import os
import re

import pytest

from dyndis_learn import TrainConfig, __version__
from dyndis_learn.checkpoint import read_checkpoint
from dyndis_learn.cli import EXIT_STATUSES, _bare_bf16, main
from tests.learn.fixtures import TINY


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({k: v for k, v in TINY.items() if k != "steps"}))
    return path


@pytest.mark.parametrize(
    ("args", "given"),
    [
        (["--bf16"], ["--bf16", "True"]),  # bare, as before "auto" existed
        (["--bf16", "--seed", "1"], ["--bf16", "True", "--seed", "1"]),
        (["--bf16", "False", "--seed", "1"], ["--bf16", "False", "--seed", "1"]),
        (["--bf16", "auto"], ["--bf16", "auto"]),
        (["--seed", "1"], ["--seed", "1"]),
    ],
)
def test__a_bare_bf16_flag_means_true(args, given):
    assert _bare_bf16(args) == given


def test__train_with_a_bare_bf16_flag_stores_bfloat16(tmp_path, config_file):
    run = tmp_path / "run"
    args = ["train", "--config", str(config_file), "--steps", "1", "--out", str(run), "--quiet", "--no-report"]
    assert main([*args, "--bf16"]) == 0
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())).bf16 is True


@pytest.mark.slow
def test__train_evaluate_report(tmp_path, config_file, capsys):
    run = tmp_path / "run"
    args = ["train", "--env.id", "DynDis/GridWorld-v0", "--config", str(config_file), "--steps", "3"]
    assert main([*args, "--seed", "1", "--model.latent-dim", "4", "--out", str(run), "--quiet"]) == 0
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
    printed = capsys.readouterr().out
    assert "criteria: single_plane=" in printed
    assert "to mend dynamics_trained: the run stopped before the dynamics phase's ramp ended" in printed  # 3 steps

    assert main(["train", "--out", str(run), "--resume", "--steps", "5", "--quiet", "--no-report"]) == 0
    assert read_checkpoint(run / "checkpoint.safetensors").step == 5
    # "auto" is the run's own budget (3, stored): a run already past it trains nothing more
    assert main(["train", "--out", str(run), "--resume", "--steps", "auto", "--quiet", "--no-report"]) == 0
    assert read_checkpoint(run / "checkpoint.safetensors").step == 5
    assert main(["evaluate", "--run", str(run), "--episodes", "2", "--horizon", "6"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["horizon"] == 6 and len(evaluation["rollout_bce"]["k"]) == 7
    assert evaluation["fidelity"]["synthesis_modes"] == 1  # "auto" on a model without angle bins
    assert main(["evaluate", "--run", str(run), "--episodes", "2", "--horizon", "6", "--synthesis-modes", "2"]) == 2
    assert "`evaluation.synthesis_modes` above 1 needs an angle-bin model" in capsys.readouterr().err
    assert main(["report", "--run", str(run), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.md").is_file()


def test__file_then_flags(tmp_path, monkeypatch):
    """Every field from a YAML file, flags override it; the trainer gets exactly that config."""
    seen = {}

    class Stop(Exception):
        pass

    def capture(self, config, run_dir=None, policy=None):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr("dyndis_learn.cli.Learner.__init__", capture)
    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\nmodel: {latent_dim: 6, channels: [8, 8]}\nwarmup: {kind: spectral}\n")
    flags = ["--model.latent-dim", "8", "--warmup.spectral.episode-steps", "3", "--threads", "1"]
    with pytest.raises(Stop):
        main(["train", "--out", str(tmp_path / "run"), "--config", str(path), *flags, "--optim.angle-lr", "None"])
    expected = TrainConfig(steps=7, threads=1).replace(
        model={"latent_dim": 8, "channels": [8, 8]}, warmup={"kind": "spectral", "spectral": {"episode_steps": 3}}
    )
    assert seen["config"] == expected
    with pytest.raises(Stop):
        main(["train", "--out", str(tmp_path / "run"), "--env.kwargs", '{"grid_shape": [3, 4]}', "--no-report"])
    assert seen["config"].env.kwargs == {"grid_shape": [3, 4]}


def test__help_documents_every_section(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in (
        "--model.latent-dim",
        "--warmup.kind",
        "--warmup.graph.exploration-batches",
        "--optim.lr",
        "--loss.rollout-weight",
        "--regularizer.weight",
        "--evaluation.horizon",
        "--logging.tensorboard",
        "--threads",
        "--config",
        "--resume",
    ):
        assert flag in out, flag
    assert "Dimension ``n`` of the latent space" in out  # the field's docstring


def test__version_and_top_level_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"dyndis-learn {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "dyndis-learn train --out runs/gridworld" in out and "``" not in out  # plain text, not reST


def _stderr(capsys) -> str:
    """Standard error with tyro's box and line breaks undone."""
    return " ".join(capsys.readouterr().err.replace("\u2502", " ").split())


def test__errors_are_reported_not_raised(tmp_path, config_file, capsys):
    assert main(["train", "--out", str(tmp_path), "--resume"]) == 2
    assert "--resume: no checkpoint at" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--config", str(config_file), "--model.latent-dim", "1"]) == 2
    assert "ModelConfig.latent_dim must be an integer >= 2 or 'auto', got 1." in _stderr(capsys)
    assert main(["train", "--out", str(tmp_path), "--env.kwargs", "[1]"]) == 2
    assert "expected a JSON object" in _stderr(capsys)
    assert main(["train", "--out", str(tmp_path), "--config", str(tmp_path / "none.json")]) == 2
    assert re.search("No config file at .*none.json", capsys.readouterr().err)


def test__resume_refuses_other_flags(tmp_path, config_file, capsys):
    run = tmp_path / "run"
    assert (
        main(["train", "--out", str(run), "--config", str(config_file), "--steps", "2", "--quiet", "--no-report"]) == 0
    )
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--seed", "3", "--model.latent-dim", "6"]) == 2
    assert "--resume continues the stored configuration; drop --model.latent-dim, --seed." in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--config", str(config_file), "--quiet"]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err


def test__resume_may_change_the_device(tmp_path, config_file):
    run = tmp_path / "run"
    assert (
        main(["train", "--out", str(run), "--config", str(config_file), "--steps", "2", "--quiet", "--no-report"]) == 0
    )
    assert (
        main(["train", "--out", str(run), "--resume", "--steps", "3", "--device", "cpu", "--quiet", "--no-report"]) == 0
    )
    stored = read_checkpoint(run / "checkpoint.safetensors")
    assert stored.step == 3 and stored.config["device"] == "cpu"


# -- errors: one line, exit 1 for runtime failures, 2 for usage errors ---------------------------------------


def test__exit_statuses_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit status:" in out
    for code in EXIT_STATUSES:
        assert f"  {code}  " in out


def test__an_out_that_is_a_file_or_under_one_is_a_usage_error(tmp_path, config_file, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", "--out", str(tmp_path / "file"), "--config", str(config_file)]) == 2
    assert f"--out {str(tmp_path / 'file')!r} is a file, not a folder." in _stderr(capsys)
    assert main(["train", "--out", str(tmp_path / "file" / "run"), "--config", str(config_file)]) == 2
    assert f"lies under {str(tmp_path / 'file')!r}, which is a file" in _stderr(capsys)
    assert main(["evaluate", "--run", str(tmp_path / "file")]) == 2
    assert "--run" in _stderr(capsys)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dyndis-learn")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test__os_errors_name_the_file_and_the_cause_with_status_1(tmp_path, config_file, capsys, monkeypatch):
    real_open = os.open

    def denied(path, flags, *args, **kwargs):  # as a folder without write permission does for a non-root user
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr("dyndis_learn.files.os.open", denied)
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--config", str(config_file), "--steps", "1", "--quiet"]) == 1
    line = _one_line(capsys)
    assert line == f"dyndis-learn train: error: {str(run / 'config.json')!r}: Permission denied [EACCES]"


def test__a_bad_checkpoint_is_a_runtime_failure(tmp_path, capsys):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"junk")
    assert main(["evaluate", "--run", str(tmp_path)]) == 1
    assert "is not a readable safetensors checkpoint" in _one_line(capsys)
    assert main(["evaluate", "--run", str(tmp_path / "none")]) == 2
    assert "No checkpoint at" in _one_line(capsys)
