"""Small files in the formats of the real datasets, for download, extraction and CLI tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from dyndis_envs.datasets import CARS3D_MESH_SHAPE


def write_shapes3d(path: Path, n_images: int = 16) -> bytes:
    """A 3dshapes.h5 look-alike: ``images`` (n, 64, 64, 3) uint8 and ``labels`` (n, 6) float64."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as file:
        file["images"] = rng.integers(0, 256, (n_images, 64, 64, 3), dtype=np.uint8)
        file["labels"] = rng.random((n_images, 6))
    return path.read_bytes()


def mesh_array(seed: int = 1) -> np.ndarray:
    """A compressible uint8 array shaped like a Cars3D mesh: (128, 128, 3, 24, 4)."""
    return ((np.arange(np.prod(CARS3D_MESH_SHAPE)) * seed) % 251).astype(np.uint8).reshape(CARS3D_MESH_SHAPE)


def write_mesh(path: Path, array: np.ndarray | None = None) -> None:
    scipy.io.savemat(path, {"im": mesh_array() if array is None else array}, do_compression=True)


def write_cars_tarball(path: Path, work: Path) -> bytes:
    """A nips2015-analogy-data.tar.gz look-alike: ``data/cars/{list.txt,car_001_mesh.mat}`` plus another folder."""
    work.mkdir(parents=True, exist_ok=True)
    write_mesh(work / "car_001_mesh.mat")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(work / "car_001_mesh.mat", arcname="data/cars/car_001_mesh.mat")
        for name, data in [("data/cars/list.txt", b"car_001_mesh\n"), ("data/shapes/readme.txt", b"other data")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()
