"""Plain helpers of the environment tests, imported explicitly (conftest files only define pytest fixtures).

* :data:`FAST_KWARGS`, :data:`ALL_IDS`, :func:`fast_kwargs`: every registered id, quick to build.
* :func:`write_shapes3d`, :func:`write_mesh`, :func:`write_cars_tarball`: small files in the formats of the
  real datasets, for download, extraction and CLI tests.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import h5py
import numpy as np
import scipy.io

import dyndis_envs
from dyndis_envs.datasets import CARS3D_MESH_SHAPE

#: Per plain id; every plain id must have an entry (its Reach and Goal ids use the same).
FAST_KWARGS: dict[str, dict] = {
    "DynDis/GridWorld-v0": {},
    # a 2 x 2 x 2 x 2 x 2 x 3 grid at 40 x 40; no frame table, so the renderer serves every image
    "DynDis/Shapes3D-v0": {
        "factors": {"floor_hue": 2, "wall_hue": 2, "object_hue": 2, "scale": 2, "shape": [0, 3], "orientation": 3},
        "image_size": 40,
        "max_table_bytes": 0,
    },
    "DynDis/Cars3D-v0": {"factors": {"object": 2}, "image_size": 40, "cache": False},
    "DynDis/BallWorld-v0": {},
}

#: Every registered id: the plain ones, then the Reach and Goal tasks.
ALL_IDS: list[str] = dyndis_envs.ENV_IDS + dyndis_envs.TASK_IDS


def plain_id(env_id: str) -> str:
    """The plain id a task id is built on (``DynDis/GridWorldReach-v0`` -> ``DynDis/GridWorld-v0``)."""
    for task in ("Reach", "Goal"):
        if env_id.endswith(f"{task}-v0"):
            return env_id[: -len(f"{task}-v0")] + "-v0"
    return env_id


def fast_kwargs(env_id: str) -> dict:
    """The fast keyword arguments of any registered id (a task id uses its plain id's)."""
    return FAST_KWARGS[plain_id(env_id)]


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
