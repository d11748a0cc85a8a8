"""Sweeps: a grid of tiny runs on a local Ray with 2 CPUs and in local processes; bad grids refused up front."""

import csv
import json
import re
import shutil
import sys

import pytest

from dyndis_learn import Learner, TrainConfig
from dyndis_learn.checkpoint import read_checkpoint
from dyndis_learn.cli import main
from dyndis_learn.sweep import Sweep, parse_grid
from tests.learn.fixtures import TINY

RUN_FILES = ("config.json", "train_log.csv", "checkpoint.safetensors", "report.json", "report.md", "rollout.gif")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def _summary(out):
    with open(out / "summary.csv", encoding="utf-8", newline="") as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def _losses(run_dir):
    """The training log without its wall-time column."""
    with open(run_dir / "train_log.csv", encoding="utf-8", newline="") as f:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(f)]


def _stderr(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture
def local_ray():
    """A local Ray instance with 2 CPUs, which the sweeps use as it is. Starting Ray takes seconds, so every
    Ray sweep of this module is in the one test that uses it (xdist could split a module's tests over two
    workers, each starting its own Ray)."""
    import ray

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test__ray__a_sweep_of_two_runs_then_an_interrupted_sweep_reruns_only_what_is_missing(
    local_ray, config_file, tmp_path, capsys
):
    # two runs on the local Ray, each a normal run folder, listed in the summary
    first = tmp_path / "first"
    assert main(["sweep", "--config", str(config_file), "--out", str(first), "--grid", "seed=0,1"]) == 0
    for seed in (0, 1):
        run = first / f"seed={seed}"
        for name in RUN_FILES:
            assert (run / name).is_file(), (run, name)
        stored = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
        assert stored == TrainConfig.from_dict({**TINY, "seed": seed})
        assert read_checkpoint(run / "checkpoint.safetensors").step == TINY["steps"]
    rows = _summary(first)
    assert list(rows) == ["seed=0", "seed=1"]
    for seed, row in enumerate(rows.values()):
        report = json.loads((first / row["run"] / "report.json").read_text())
        assert (row["seed"], row["status"], row["action"], row["start_step"]) == (str(seed), "done", "started", "0")
        assert float(row["rollout_bce_ratio"]) == pytest.approx(report["rollout_bce_ratio"])
        assert row["criteria.all"] == str(report["criteria"]["all"])
        assert float(row["min_plane_share"]) == pytest.approx(min(a["plane_share"] for a in report["actions"]))
    summary = json.loads((first / "summary.json").read_text())
    assert summary["sweep"]["grid"] == {"seed": [0, 1]} and len(summary["runs"]) == 2
    assert "| seed=1 | 1 | done | 6 |" in (first / "summary.md").read_text()

    # killed midway: one run finished, one interrupted at a checkpoint (step 3 of 6), one never started; the
    # rerun skips the first and resumes the second exactly where it stopped
    out = tmp_path / "sweep"
    shutil.copytree(first / "seed=0", out / "seed=0")
    finished = (out / "seed=0" / "checkpoint.safetensors").stat().st_mtime_ns
    interrupted = Learner(TrainConfig.from_dict({**TINY, "seed": 1}), run_dir=out / "seed=1")
    interrupted.train(3, progress=False)
    interrupted.close()
    capsys.readouterr()
    args = ["sweep", "--config", str(config_file), "--out", str(out), "--grid"]
    assert main([*args, "seed=0,1,2", "--dry-run"]) == 0
    assert capsys.readouterr().out.split() == [
        "finished", str(out / "seed=0"), "resume", str(out / "seed=1"), "start", str(out / "seed=2")
    ]
    assert main([*args, "seed=0,1"]) == 0
    assert "(0 to start, 1 to resume, 1 finished)" in capsys.readouterr().out
    rows = _summary(out)
    assert [(r["status"], r["action"], r["start_step"]) for r in rows.values()] == [
        ("done", "skipped", "6"), ("done", "resumed", "3")
    ]
    assert (out / "seed=0" / "checkpoint.safetensors").stat().st_mtime_ns == finished
    assert _losses(out / "seed=1") == _losses(first / "seed=1")  # exact resume: the uninterrupted run's log
    assert main([*args, "seed=0,1"]) == 0  # nothing left to do
    assert "(0 to start, 0 to resume, 2 finished)" in capsys.readouterr().out
    # a sweep that leaves the budget to the trainer ("auto") finds them done at the steps their trainers took
    auto = tmp_path / "auto.json"
    auto.write_text(json.dumps({**TINY, "steps": "auto"}))
    assert main(["sweep", "--config", str(auto), "--out", str(out), "--grid", "seed=0,1", "--dry-run"]) == 0
    assert capsys.readouterr().out.split()[::2] == ["finished", "finished"]

    # a rerun with another config is refused, naming the field
    assert main(["sweep", "--config", str(config_file), "--out", str(first), "--grid", "seed=0,1", "--steps", "7"]) == 2
    expected = r"run 'seed=0': its folder .* holds a run of another config \(steps: 6 there, 7 in this sweep\)"
    assert re.search(expected, _stderr(capsys))


@pytest.mark.slow
def test__jobs__local_processes_without_ray_and_a_failed_run_stops_no_other(config_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # the --jobs path never imports Ray
    out, reference = tmp_path / "sweep", tmp_path / "reference"
    broken = out / "seed=0"  # its checkpoint is garbage: resuming it fails
    broken.mkdir(parents=True)
    (broken / "config.json").write_text(json.dumps(TrainConfig.from_dict({**TINY, "seed": 0}).to_dict()))
    (broken / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    assert main(["sweep", "--config", str(config_file), "--out", str(out), "--grid", "seed=0,1", "--jobs", "1"]) == 1
    assert "[2/2] seed=1: done in" in capsys.readouterr().out
    failed, done = _summary(out).values()
    assert (failed["status"], failed["action"]) == ("failed", "resumed") and "CheckpointError" in failed["error"]
    assert (done["status"], done["action"], done["error"]) == ("done", "started", "")
    for name in RUN_FILES:
        assert (out / "seed=1" / name).is_file(), name
    train = ["train", "--config", str(config_file), "--seed", "1", "--out", str(reference), "--quiet", "--no-report"]
    assert main(train) == 0
    assert _losses(out / "seed=1") == _losses(reference)


def test__ray_asked_for_and_missing_names_the_extra(config_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "sweep"
    assert main(["sweep", "--config", str(config_file), "--out", str(out), "--grid", "seed=0"]) == 2
    err = _stderr(capsys)
    assert "Ray is not installed: install the extra with pip install 'dyndis-learn[distributed]'" in err
    assert "--jobs N" in err and not out.exists()


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["model.methd=rotation"], "--grid model.methd: model has no field 'methd' (did you mean 'model.method'?)"),
        (["seed="], "--grid seed: the list of values is empty"),
        (["seed=0,0"], "--grid seed: value(s) 0 given twice."),
        (["seed=a"], "--grid seed=a: TrainConfig.seed must be an integer >= 0, got 'a'."),
        (
            ["model.latent_dim=4,1"],
            "--grid model.latent_dim=1: ModelConfig.latent_dim must be an integer >= 2 or 'auto', got 1.",
        ),
        (["model.method=rotation,nope"], "--grid model.method=nope: ModelConfig.method must be one of the registered"),
        (["model=1"], "--grid model: 'model' is a section; name one of its fields, e.g. model.method."),
        (["seed=0", "seed=1"], "--grid seed is given twice"),
        (["env.kwargs={}", "env.kwargs.image_size=16"], "--grid env.kwargs and --grid env.kwargs.image_size set the"),
        (["env.kwargs.image_size=16,8"], "run 'env.kwargs.image_size=8': its environment 'DynDis/GridWorld-v0'"),
        ([], "A sweep needs a grid"),
    ],
)
def test__a_bad_grid_is_a_usage_error_before_anything_starts(grid, message, config_file, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = [arg for entry in grid for arg in ("--grid", entry)]
    assert main(["sweep", "--config", str(config_file), "--out", str(out), *args, "--jobs", "1"]) == 2
    assert message in _stderr(capsys)
    assert not out.exists()


def test__a_grid_file_adds_axes(config_file, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("model.method: [rotation, quessard2020]\nseed: []\n")
    out = tmp_path / "sweep"
    args = ["sweep", "--config", str(config_file), "--out", str(out), "--grid-file", str(grid), "--dry-run"]
    assert main(args) == 2
    assert "'seed' must be a non-empty list of values, got []." in _stderr(capsys)
    grid.write_text("model.method: [rotation, quessard2020]\n")
    assert main([*args, "--grid", "seed=3"]) == 0
    assert capsys.readouterr().out.split()[1::2] == [
        str(out / "seed=3,model.method=rotation"), str(out / "seed=3,model.method=quessard2020")
    ]


def test__jobs_refuses_ray_settings(config_file, tmp_path, capsys):
    args = ["sweep", "--config", str(config_file), "--out", str(tmp_path / "s"), "--grid", "seed=0", "--jobs", "2"]
    assert main([*args, "--gpus-per-run", "1"]) == 2
    assert "--gpus-per-run: Ray settings, but --jobs runs without Ray" in _stderr(capsys)


def test__parse_grid__json_values_text_for_text_fields_and_brackets_kept_whole():
    axes = parse_grid(
        [
            "seed=0,1",
            "optim.lr=1e-3,0.002",
            "model.method=rotation,quessard2020",
            "env.id=DynDis/GridWorld-v0",
            "model.channels=[8,8],[16, 16]",
            'env.kwargs={"image_size": 16, "grid_shape": [5, 5]},{"image_size": 32}',
            "optim.angle_lr=null,0",
        ]
    )
    assert axes == {
        "seed": [0, 1],
        "optim.lr": [0.001, 0.002],
        "model.method": ["rotation", "quessard2020"],
        "env.id": ["DynDis/GridWorld-v0"],
        "model.channels": [[8, 8], [16, 16]],
        "env.kwargs": [{"image_size": 16, "grid_shape": [5, 5]}, {"image_size": 32}],
        "optim.angle_lr": [None, 0],
    }


def test__runs_are_the_product_of_the_axes_with_dashed_names_and_keys_inside_kwargs():
    base = TrainConfig.from_dict(TINY)
    sweep = Sweep.from_grid("out", base, {"model.latent-dim": [4, 6], "env.kwargs.grid_shape": [[5, 5]]})
    assert [run.name for run in sweep.runs] == [
        "model.latent-dim=4,env.kwargs.grid_shape=5,5",
        "model.latent-dim=6,env.kwargs.grid_shape=5,5",
    ]
    env = {"id": TINY["env"]["id"], "kwargs": {"image_size": 16, "grid_shape": [5, 5]}}
    model = {**TINY["model"], "latent_dim": 6}
    assert sweep.runs[1].config == TrainConfig.from_dict({**TINY, "model": model, "env": env})


def test__a_run_whose_auto_latent_dim_was_resolved_is_the_sweeps_own(tmp_path):
    base = TrainConfig.from_dict(TINY).replace(model={"latent_dim": "auto"})
    sweep = Sweep.from_grid(tmp_path, base, {"seed": [0]})
    (run,) = sweep.runs
    folder = sweep.run_dir(run)
    folder.mkdir(parents=True)
    stored = run.config.replace(model={"latent_dim": 4}).to_dict()  # what its trainer wrote
    (folder / "config.json").write_text(json.dumps(stored))
    assert sweep.state(run) == "start"
    (folder / "config.json").write_text(json.dumps({**stored, "seed": 1}))
    with pytest.raises(ValueError, match=re.escape("seed: 1 there, 0 in this sweep")):
        sweep.state(run)
