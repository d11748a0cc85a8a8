"""The data directory and the choice between the file and the procedural source."""

import re

import pytest

from dyndis_envs.data_paths import data_dir, resolve_backend


def test__data_dir__from_the_environment_or_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNDIS_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("DYNDIS_DATA")
    assert data_dir().parts[-2:] == (".cache", "dyndis")


def test__resolve_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNDIS_DATA", str(tmp_path))
    assert resolve_backend("procedural", tmp_path / "x.h5", "x.h5") == ("procedural", None)
    assert resolve_backend("auto", None, "x.h5") == ("procedural", None)
    with pytest.raises(FileNotFoundError, match=re.escape("backend='file' but the dataset was not found at")):
        resolve_backend("file", None, "x.h5")
    (tmp_path / "x.h5").write_bytes(b"")
    assert resolve_backend("auto", None, "x.h5") == ("file", tmp_path / "x.h5")
    assert resolve_backend("file", tmp_path / "x.h5", "other") == ("file", tmp_path / "x.h5")
    message = "Invalid `backend`, expected one of ('procedural', 'file', 'auto'), got 'opengl'."
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_backend("opengl", None, "x.h5")
