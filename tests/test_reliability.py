"""The cases of the issue "Reliability and integrity", replayed as the user met them: through the command line.

Each test runs ``dyndis-learn`` (``dyndis_learn.cli.main``, or ``python -m dyndis_learn`` in a subprocess
where the process must be killed) on the tiny config of the learner's tests, and checks the files it leaves
and the one-line error and exit status it gives (1: a runtime failure, 2: a usage error).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dyndis_learn.checkpoint import read_checkpoint
from dyndis_learn.cli import main
from dyndis_learn.evaluate import evaluation_memory
from dyndis_learn.limits import available_memory
from tests.learn.fixtures import TINY

CHECKPOINT = "checkpoint.safetensors"


def _config_file(folder: Path, **changes) -> Path:
    config = json.loads(json.dumps(TINY))
    for key, value in changes.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    path = folder / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def _train(config: Path, out: Path, *flags: str) -> int:
    return main(["train", "--config", str(config), "--out", str(out), "--quiet", *flags])


def _error(capsys) -> str:
    """The one error line on standard error (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dyndis-learn ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _edit_header(path: Path, edit, *, resign: bool) -> None:
    """Edit the JSON state in a checkpoint's header, as with a text editor; ``resign`` recomputes its digest."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    metadata = header["__metadata__"]
    state = json.loads(metadata["dyndis_learn"])
    edit(state)
    metadata["dyndis_learn"] = json.dumps(state)
    if resign:
        digests = json.loads(metadata["dyndis_learn.digests"])
        digests["header"] = hashlib.sha256(metadata["dyndis_learn"].encode()).hexdigest()
        metadata["dyndis_learn.digests"] = json.dumps(digests)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained through the command line under umask 022, with its report (read-only: tests copy it)."""
    folder = tmp_path_factory.mktemp("trained")
    saved = os.umask(0o022)
    try:
        assert _train(_config_file(folder), folder / "run") == 0
    finally:
        os.umask(saved)
    return folder / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


# -- 1. file modes and stale temporary files -------------------------------------------------------------


def test__every_run_file_has_the_mode_of_a_plain_open(trained):
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in trained.iterdir()}
    for name in ("checkpoint.safetensors", "config.json", "report.json", "report.md", "rollout.gif", "angles.png"):
        assert name in modes, name
    assert modes == dict.fromkeys(modes, 0o644)  # train_log.csv (a plain open) included


def test__the_environments_atomic_write_has_the_mode_of_a_plain_open(tmp_path):
    from dyndis_envs._files import atomic_write

    saved = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "x.bin") as file:
            file.write(b"x")
    finally:
        os.umask(saved)
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o640


def test__resume_removes_the_temporary_file_of_a_save_killed_earlier(run, capsys):
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()  # a process that no longer exists, like one killed by kill -9
    from dyndis_learn.files import _HOST

    stale = run / f".{CHECKPOINT}.{_HOST}-{killed.pid}-0123abcd.tmp"
    stale.write_bytes(b"the first half of a checkpoint")
    assert main(["train", "--out", str(run), "--resume", "--steps", "7", "--quiet", "--no-report"]) == 0
    assert not stale.exists() and read_checkpoint(run / CHECKPOINT).step == 7


# -- 2. errors: one line, no traceback ------------------------------------------------------------------


def test__an_out_that_is_a_file_or_lies_under_one(tmp_path, capsys):
    config = _config_file(tmp_path)
    (tmp_path / "file").write_text("x")
    assert _train(config, tmp_path / "file") == 2
    assert "--out" in _error(capsys)
    assert _train(config, tmp_path / "file" / "run") == 2
    assert "which is a file, not a folder" in _error(capsys)


def test__an_unwritable_output_folder(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:  # root writes anyway: refuse as the kernel would for anyone else
        real_open = os.open

        def open_as_user(path, flags, mode=0o777, **kwargs):
            if Path(path).parent == folder and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, mode, **kwargs)

        monkeypatch.setattr("dyndis_learn.files.os.open", open_as_user)
    try:
        assert _train(_config_file(tmp_path), folder) == 1
    finally:
        folder.chmod(0o700)
    assert f"{str(folder / 'config.json')!r}: Permission denied [EACCES]" in _error(capsys)


def test__a_full_disk(tmp_path, capsys, monkeypatch):
    class FullDisk:
        """A file whose writes stop half way with ENOSPC."""

        def __init__(self, path, mode):
            self.file = open(path, mode)  # noqa: SIM115

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.file.close()

    monkeypatch.setattr("dyndis_learn.checkpoint.open", FullDisk, raising=False)
    out = tmp_path / "run"
    assert _train(_config_file(tmp_path), out, "--no-report") == 1
    assert _error(capsys) == f"dyndis-learn train: error: {str(out / CHECKPOINT)!r}: No space left on device [ENOSPC]"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "train_log.csv"]  # no checkpoint, no temporary


def test__an_evaluation_horizon_beyond_the_memory(run, capsys):
    needed = evaluation_memory((16, 16, 3), 4, TINY["evaluation"]["episodes"], 100_000_000)
    available = available_memory()
    if available is None or available >= needed:
        pytest.skip("this machine has the memory for it, or cannot say how much it has")
    assert main(["evaluate", "--run", str(run), "--horizon", "100000000"]) == 2
    line = _error(capsys)
    assert "needs about" in line and "GiB is available: lower the horizon (--horizon)" in line
    assert not (run / "evaluation.json").exists()


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("latent_dim", 6, "model.latent_dim=6"), ("channels", [8, 16], "model.channels=[8, 16]")],
)
def test__a_checkpoint_whose_config_was_edited(run, capsys, field, value, named):
    path = run / CHECKPOINT
    original = path.read_bytes()
    _edit_header(path, lambda state: state["config"]["model"].update({field: value}), resign=False)
    assert main(["evaluate", "--run", str(run)]) == 1
    assert "checkpoint corrupted" in _error(capsys)  # the header's digest catches the edit
    path.write_bytes(original)
    _edit_header(path, lambda state: state["config"]["model"].update({field: value}), resign=True)
    assert main(["evaluate", "--run", str(run)]) == 1
    line = _error(capsys)  # with the digest recomputed, the shapes still tell
    assert f"its config does not match its tensors: the stored config ({named}) builds the tensor" in line


def test__a_checkpoint_without_its_config(run, capsys):
    _edit_header(run / CHECKPOINT, lambda state: state.pop("config"), resign=True)
    assert main(["evaluate", "--run", str(run)]) == 1
    assert "is incomplete: its header has no 'config'" in _error(capsys)


def test__a_million_threads(tmp_path, capsys):
    assert _train(_config_file(tmp_path), tmp_path / "run", "--threads", "1000000") == 2
    assert "threads must be an integer >= 0 and <= 256, got 1000000" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "run").exists()


# -- 3. integrity and refusals on resume ---------------------------------------------------------------------


def test__a_damaged_tensor_is_named(run, capsys):
    path = run / CHECKPOINT
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["report", "--run", str(run)]) == 1
    assert "checkpoint corrupted" in (line := _error(capsys)) and "the tensor" in line


def test__resume_refuses_an_environment_edited_in_config_json(run, capsys):
    path = run / "config.json"
    config = json.loads(path.read_text())
    config["env"]["kwargs"]["image_size"] = 32
    path.write_text(json.dumps(config))
    assert main(["train", "--out", str(run), "--resume", "--steps", "8", "--quiet"]) == 1
    assert "config.json disagrees with the checkpoint's config (env.kwargs:" in _error(capsys)
    assert read_checkpoint(run / CHECKPOINT).step == TINY["steps"]


def test__resume_refuses_an_environment_edited_in_the_checkpoint(run, capsys):
    _edit_header(run / CHECKPOINT, lambda state: state["config"]["env"]["kwargs"].update(image_size=32), resign=False)
    assert main(["train", "--out", str(run), "--resume", "--steps", "8", "--quiet"]) == 1
    assert "checkpoint corrupted" in _error(capsys)


def test__resume_with_a_total_below_the_stored_step(run, capsys):
    assert main(["train", "--out", str(run), "--resume", "--steps", "2", "--quiet"]) == 2
    assert "already at step 6, beyond the requested total of 2 steps" in _error(capsys)
    assert read_checkpoint(run / CHECKPOINT).step == 6


# -- 4. fault injection: kill -9 at random points, resume, same parameters ----------------------------------

#: Run in the subprocess instead of ``python -m dyndis_learn``: the same, but the ``KILL_AT``-th checkpoint
#: save writes half its temporary file, says so in the marker file, and waits to be killed.
_SLOW_SAVE = """
import os, runpy, sys, time
import dyndis_learn.checkpoint as checkpoint
marker, kill_at = sys.argv[1], int(sys.argv[2])
real, calls = checkpoint.atomic_write, []
def atomic_write(path, write, suffix=".tmp"):
    calls.append(path)
    if len(calls) < kill_at:
        return real(path, write, suffix)
    def half(tmp):
        write(tmp)
        os.truncate(tmp, os.path.getsize(tmp) // 2)
        open(marker, "w").close()
        time.sleep(600)
    return real(path, half, suffix)
checkpoint.atomic_write = atomic_write
sys.argv = ["dyndis_learn", *sys.argv[3:]]
runpy.run_module("dyndis_learn", run_name="__main__")
"""

_STEPS = 24


def _state(path: Path) -> dict:
    checkpoint = read_checkpoint(path)
    tensors = {**checkpoint.model_state, **checkpoint.optimizer_tensors, "rng": checkpoint.rng_state}
    history = [{k: v for k, v in row.items() if k != "wall_time"} for row in checkpoint.history]
    return {"step": checkpoint.step, "tensors": tensors, "history": history}


@pytest.mark.slow
def test__training_killed_at_random_points_resumes_bit_identically(tmp_path):
    config = _config_file(tmp_path, steps=_STEPS, logging={"checkpoint_every": 1, "log_every": 1})
    assert _train(config, tmp_path / "straight", "--no-report") == 0
    expected = _state(tmp_path / "straight" / CHECKPOINT)

    # Every run starts at once (their imports overlap). The first is killed as soon as its training starts
    # (config.json written: the graph warm-up's steps come next); the next ones a seeded random delay of
    # up to 20 ms after a seeded random number of steps (rows of train_log.csv; the step's checkpoint save
    # comes right after its row); the last one during its 5th checkpoint save.
    rng = random.Random(20240601)
    triggers = [(0, 0.0), *((rng.randint(1, _STEPS - 8), rng.uniform(0.0, 0.02)) for _ in range(3))]
    flags = ["train", "--config", str(config), "--quiet", "--no-report", "--out"]
    runs = [tmp_path / f"run{i}" for i in range(len(triggers) + 1)]
    marker = tmp_path / "saving"
    processes = [
        subprocess.Popen([sys.executable, "-m", "dyndis_learn", *flags, str(out)], cwd=tmp_path, **_quiet())
        for out in runs[:-1]
    ]
    processes.append(
        subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(marker), "5", *flags, str(runs[-1])], **_quiet())
    )
    deadlines: dict[int, float] = {}
    try:
        give_up = time.monotonic() + 120
        while any(p.poll() is None for p in processes) and time.monotonic() < give_up:
            for i, (process, out) in enumerate(zip(processes, runs, strict=True)):
                if process.poll() is not None:
                    continue
                if i == len(triggers):
                    if marker.exists():
                        process.kill()
                elif i not in deadlines and _steps_logged(out) >= triggers[i][0]:
                    deadlines[i] = time.monotonic() + triggers[i][1]
                if i in deadlines and time.monotonic() >= deadlines[i]:
                    process.kill()
            time.sleep(0.001)
    finally:
        for process in processes:
            process.kill()
            process.wait()

    interrupted = []
    for out in runs:
        checkpoint = out / CHECKPOINT
        interrupted.append(read_checkpoint(checkpoint).step if checkpoint.exists() else None)
        temporaries = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        if out == runs[-1]:
            assert temporaries, "the kill during a save left its temporary file"
        if checkpoint.exists():
            assert main(["train", "--out", str(out), "--resume", "--quiet", "--no-report"]) == 0
        else:  # killed before its first checkpoint: start again
            assert _train(config, out, "--no-report") == 0
        assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        actual = _state(checkpoint)
        assert actual["step"] == expected["step"] and actual["history"] == expected["history"], out.name
        for name, tensor in expected["tensors"].items():
            assert torch.equal(actual["tensors"][name], tensor), (out.name, name)
    assert all(step is None or step < _STEPS for step in interrupted), interrupted  # every run was cut short
    assert interrupted[-1] == 4, interrupted  # killed while saving step 5


def _steps_logged(out: Path) -> int:
    """Rows of a run's train_log.csv (-1 before its training starts)."""
    if not (out / "config.json").exists():
        return -1
    try:
        return max((out / "train_log.csv").read_text().count("\n") - 1, 0)
    except FileNotFoundError:
        return 0


def _quiet() -> dict:
    return {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": {**os.environ, "OMP_NUM_THREADS": "1"}}
