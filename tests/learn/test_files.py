import errno
import json
import os
import stat
import subprocess
import sys
import time

import pytest

from dyndis_learn import files
from dyndis_learn.files import atomic_write, write_json_atomic


def test__write_json_atomic(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "x.json", {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test__a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test__the_temporary_file_keeps_the_suffix(tmp_path):
    seen = []
    atomic_write(tmp_path / "a.png", lambda tmp: (seen.append(tmp), open(tmp, "wb").close()), suffix=".png")
    assert seen[0].endswith(".png") and (tmp_path / "a.png").is_file()


@pytest.fixture
def umask():
    """Set the process umask for one test (os.umask is process-wide: each xdist worker is its own process)."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test__the_new_file_gets_the_mode_of_a_plain_open(tmp_path, umask, mask):
    umask(mask)
    write_json_atomic(tmp_path / "a.json", {})
    atomic_write(tmp_path / "b.png", lambda tmp: open(tmp, "wb").close(), suffix=".png")
    with open(tmp_path / "plain", "w"):
        pass
    expected = 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == expected
    for name in ("a.json", "b.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _temporary(folder, destination: str, middle: str, suffix: str = ".tmp", age: float = 0.0):
    path = folder / f".{destination}.{middle}{suffix}"
    path.write_bytes(b"half")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def test__stale_temporaries_of_the_destination_are_removed_and_no_others(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    stale = [
        _temporary(tmp_path, "c.safetensors", f"{files._HOST}-{dead}-0123abcd"),  # killed writer, this host
        _temporary(tmp_path, "c.safetensors", "k3j_x9a0", age=2 * files.STALE_AFTER_SECONDS),  # old mkstemp name
        _temporary(tmp_path, "c.safetensors", f"ffffffff-{alive}-0123abcd", age=2 * files.STALE_AFTER_SECONDS),
    ]
    kept = [
        _temporary(tmp_path, "c.safetensors", f"{files._HOST}-{alive}-0123abcd"),  # a live, concurrent writer
        _temporary(tmp_path, "c.safetensors", f"{files._HOST}-{os.getpid()}-0123abcd"),  # this process
        _temporary(tmp_path, "c.safetensors", f"ffffffff-{dead}-0123abcd"),  # another host: cannot tell, recent
        _temporary(tmp_path, "c.safetensors", "q7w_e2r1"),  # a recent mkstemp name (an older version writing)
        _temporary(tmp_path, "other.safetensors", f"{files._HOST}-{dead}-0123abcd"),  # another destination
        _temporary(tmp_path, "c.safetensors", f"{files._HOST}-{dead}-0123abcd", suffix=".png"),  # another suffix
        _temporary(tmp_path, "c.safetensors", "not-a-temporary-name"),
    ]
    removed = files.remove_stale_temporaries(tmp_path / "c.safetensors")
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    # a save removes them too
    again = _temporary(tmp_path, "c.safetensors", f"{files._HOST}-{dead}-fedcba98")
    write_json_atomic(tmp_path / "c.safetensors", {})
    assert not again.exists() and all(p.exists() for p in kept)


def test__errors_name_the_destination_not_the_temporary(tmp_path):
    def full(tmp):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "x.json", full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.json")

    def denied(tmp):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), tmp)

    with pytest.raises(PermissionError) as info:
        atomic_write(tmp_path / "y.json", denied)
    assert info.value.filename == str(tmp_path / "y.json")
    assert list(tmp_path.iterdir()) == []
