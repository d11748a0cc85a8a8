"""A verified on-disk cache of rendered views: one ``.npy`` per car, its SHA-256 in a JSON sidecar.

The cache lives in ``data_dir() / "cache" / f"cars3d-{key}"``, where ``key`` hashes everything the images
depend on (renderer version and parameters, the models, the image size), so a change to any of them starts
a fresh folder instead of reusing stale images. Every file is written atomically
(:func:`~dyndis_envs._files.atomic_write`): the ``.npy`` first, then the sidecar, so a sidecar always describes a
complete array. Loading checks the array file's SHA-256 against its sidecar, then its dtype and shape; a
file that fails is reported with a warning and rendered again. Arrays are stored as plain ``.npy`` and read
with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dyndis_envs._files import atomic_write

__all__ = ["ViewCache", "cache_key"]


def cache_key(parameters: Mapping[str, Any]) -> str:
    """A short, stable hash of JSON-serialisable parameters."""
    text = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ViewCache:
    """Per-item uint8 arrays on disk, each verified against its recorded SHA-256 when loaded.

    Args:
        folder: The cache folder for one key (created on first write).
        parameters: What the arrays depend on; recorded in every sidecar for provenance.
        shape: The shape every stored array must have.
    """

    def __init__(self, folder: Path, parameters: Mapping[str, Any], shape: tuple[int, ...]) -> None:
        self.folder = Path(folder)
        self.parameters = dict(parameters)
        self.shape = tuple(shape)
        self._write_failed = False

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.folder / f"{name}.npy", self.folder / f"{name}.json"

    def load(self, name: str) -> npt.NDArray[np.uint8] | None:
        """The stored array called ``name``, or None if it is missing or fails verification (with a warning)."""
        array_path, sidecar_path = self._paths(name)
        if not array_path.exists() and not sidecar_path.exists():
            return None
        try:
            expected = json.loads(sidecar_path.read_text())["sha256"]
            data = array_path.read_bytes()
            if hashlib.sha256(data).hexdigest() != expected:
                raise ValueError("checksum mismatch")
            array = np.load(io.BytesIO(data), allow_pickle=False)
            if array.dtype != np.uint8 or array.shape != self.shape:
                raise ValueError(f"expected uint8 {self.shape}, found {array.dtype} {array.shape}")
        except (OSError, ValueError, KeyError, TypeError) as exc:  # missing half, bad JSON, bad .npy, mismatch
            warnings.warn(
                f"Cars3D view cache entry {str(array_path)!r} is corrupt or incomplete ({exc}); rendering it again.",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return array

    def store(self, name: str, array: npt.NDArray[np.uint8]) -> None:
        """Write ``array`` and its sidecar atomically; warn (once) instead of failing if the folder is read-only."""
        if self._write_failed:
            return
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        data = buffer.getvalue()
        sidecar = {"sha256": hashlib.sha256(data).hexdigest(), "name": name, "shape": list(array.shape),
                   "dtype": "uint8", "parameters": self.parameters}
        array_path, sidecar_path = self._paths(name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(array_path) as file:
                file.write(data)
            with atomic_write(sidecar_path) as file:
                file.write(json.dumps(sidecar, indent=1).encode())
        except OSError as exc:
            self._write_failed = True
            warnings.warn(
                f"Cannot write the Cars3D view cache in {str(self.folder)!r} ({exc}); views will be rendered "
                "again next time. Set $DYNDIS_DATA to a writable folder or pass cache=False.",
                RuntimeWarning,
                stacklevel=3,
            )
