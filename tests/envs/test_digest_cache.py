"""The record of file digests: reused while path, size and modification time match; never trusted otherwise."""

import hashlib
import json
import os
import re

import pytest

from dyndis_envs import _digest_cache
from dyndis_envs._digest_cache import cache_file, cached_file_digest


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv("DYNDIS_DATA", str(folder))
    return folder


@pytest.fixture
def hashes(monkeypatch):
    calls = []
    real = _digest_cache.file_digest
    monkeypatch.setattr(_digest_cache, "file_digest", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    return calls


@pytest.fixture
def file(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"dataset bytes")
    return path


SHA = hashlib.sha256(b"dataset bytes").hexdigest()


def test__computed_once_then_reused(file, data_dir, hashes):
    assert cache_file() == data_dir / "cache" / "file-digests.json"
    assert [cached_file_digest(file, "sha256") for _ in range(3)] == [SHA] * 3
    assert hashes == [file]
    assert cached_file_digest(file, "md5") == hashlib.md5(b"dataset bytes").hexdigest()  # another algorithm
    assert len(hashes) == 2


@pytest.mark.parametrize("change", ["content_same_size", "size", "mtime"])
def test__a_changed_file_is_hashed_again(file, hashes, change):
    cached_file_digest(file, "sha256")
    stat = file.stat()
    if change == "size":
        file.write_bytes(b"dataset bytes!")
    elif change == "content_same_size":
        file.write_bytes(b"Dataset bytes")
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cached_file_digest(file, "sha256") == hashlib.sha256(file.read_bytes()).hexdigest()
    assert len(hashes) == 2


def test__a_file_moved_elsewhere_is_hashed_again(file, tmp_path, hashes):
    cached_file_digest(file, "sha256")
    moved = file.rename(tmp_path / "moved.bin")
    assert cached_file_digest(moved, "sha256") == SHA
    assert len(hashes) == 2
    assert set(json.loads(cache_file().read_text())["files"]) == {str(file), str(moved)}


@pytest.mark.parametrize("text", ["{not json", '{"version": 0, "files": {}}', "[]", '{"version": 1, "files": 3}'])
def test__a_malformed_record_counts_as_empty_and_is_rewritten(file, hashes, text):
    cache_file().parent.mkdir(parents=True)
    cache_file().write_text(text)
    assert cached_file_digest(file, "sha256") == SHA
    assert json.loads(cache_file().read_text())["files"][str(file)]["digest"] == SHA


def test__a_forged_entry_for_other_size_or_time_is_ignored(file, hashes):
    stat = file.stat()
    cache_file().parent.mkdir(parents=True)
    forged = {"size": stat.st_size + 1, "mtime_ns": stat.st_mtime_ns, "algorithm": "sha256", "digest": "0" * 64}
    cache_file().write_text(json.dumps({"version": 1, "files": {str(file): forged}}))
    assert cached_file_digest(file, "sha256") == SHA


def test__a_file_that_changes_while_hashed_is_not_recorded(file, monkeypatch):
    real = _digest_cache.file_digest

    def hash_then_touch(path, algorithm):
        digest = real(path, algorithm)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        return digest

    monkeypatch.setattr(_digest_cache, "file_digest", hash_then_touch)
    assert cached_file_digest(file, "sha256") == SHA
    assert not cache_file().exists()


def test__an_unwritable_data_folder__warns_and_still_answers(file, data_dir, hashes):
    data_dir.write_text("a file where the data folder should be")
    message = f"Cannot record the digest of {str(file)!r} in {str(cache_file())!r} ("
    for _ in range(2):
        with pytest.warns(RuntimeWarning, match=re.escape(message)):
            assert cached_file_digest(file, "sha256") == SHA
    assert len(hashes) == 2


def test__missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        cached_file_digest(tmp_path / "absent.bin", "sha256")
