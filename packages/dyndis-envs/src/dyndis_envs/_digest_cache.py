"""Digests of large dataset files, recorded so that a file is hashed once, not at every load.

The record is one small JSON file, ``data_dir() / "cache" / "file-digests.json"``, mapping a file's absolute
path to its size, modification time (``st_mtime_ns``), hash algorithm and hex digest. A recorded digest is
reused only while the file's path, size and modification time are all unchanged; anything else hashes the
file again. The record is rewritten atomically (:func:`~dyndis_envs._files.atomic_write`); an unreadable or
malformed record counts as empty, and a folder that cannot be written only costs a new hash next time (with
a warning). Writers that race lose at most each other's entries, never corrupt the file.

This is a cache, not a proof: a file edited in place that keeps its size and modification time (``touch -r``)
is not hashed again. ``dyndis-envs verify`` always hashes.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from dyndis_envs import data_paths
from dyndis_envs._files import atomic_write
from dyndis_envs.download import file_digest

__all__ = ["cache_file", "cached_file_digest"]

_VERSION = 1


def cache_file() -> Path:
    """Where the digests are recorded: ``data_dir() / "cache" / "file-digests.json"``."""
    return data_paths.data_dir() / "cache" / "file-digests.json"


def _load(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable or not JSON: start afresh
        return {}
    if not isinstance(record, dict) or record.get("version") != _VERSION or not isinstance(record.get("files"), dict):
        return {}
    return record["files"]


def _identity(stat: os.stat_result) -> dict[str, int]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cached_file_digest(path: str | os.PathLike[str], algorithm: str) -> str:
    """The file's hex digest: the recorded one while path, size and modification time match, else computed.

    A computed digest is recorded, unless the file changed while it was being hashed.

    Args:
        path: The file.
        algorithm: ``"sha256"`` or ``"md5"``.

    Raises:
        FileNotFoundError: No file at ``path``.
    """
    path = Path(path).resolve()
    before = path.stat()
    record = cache_file()
    files = _load(record)
    entry = files.get(str(path))
    if (
        isinstance(entry, dict)
        and entry.get("algorithm") == algorithm
        and {key: entry.get(key) for key in ("size", "mtime_ns")} == _identity(before)
        and isinstance(entry.get("digest"), str)
    ):
        return entry["digest"]
    digest = file_digest(path, algorithm)
    if _identity(path.stat()) != _identity(before):
        return digest  # changed while hashed: the digest belongs to no single version of the file
    files = _load(record)  # re-read: another process may have recorded files meanwhile
    files[str(path)] = {**_identity(before), "algorithm": algorithm, "digest": digest}
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(record) as file:
            file.write(json.dumps({"version": _VERSION, "files": files}, indent=1, sort_keys=True).encode())
    except OSError as exc:
        warnings.warn(
            f"Cannot record the digest of {str(path)!r} in {str(record)!r} ({exc}); the file will be hashed "
            "again next time. Set $DYNDIS_DATA to a writable folder.",
            RuntimeWarning,
            stacklevel=2,
        )
    return digest
