"""atomic_write: the target is either untouched or complete, and no temporary file is left behind."""

import os
import stat

import pytest

from dyndis_envs._files import atomic_write


def test__atomic_write__replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as file:
        file.write(b"new")
        assert target.read_bytes() == b"old"  # not visible before the block ends
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test__atomic_write__an_error_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_write(target) as file:
        file.write(b"half")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test__atomic_write__new_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_write(tmp_path / "new.txt") as file:
        file.write(b"x")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~umask


def test__atomic_write__missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_write(tmp_path / "no" / "such" / "file"):
        pass
