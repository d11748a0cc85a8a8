"""Atomic file writes: a file on disk is either the old one or the complete new one, never half written."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_json_atomic"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any], suffix: str = ".tmp") -> Path:
    """Write ``path`` through a temporary file in the same folder, moved into place with ``os.replace``.

    Args:
        path: Destination file (its folder is created if needed).
        write: Called with the temporary file's name; writes the whole content there.
        suffix: Suffix of the temporary name (some writers pick the format from it, e.g. ``".png"``).

    Returns:
        ``path``. On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path``, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")

    return atomic_write(path, write)
