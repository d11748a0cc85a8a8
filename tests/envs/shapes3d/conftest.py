"""Fixtures of the Shapes3D tests: an isolated data directory and a small 3dshapes.h5 in the real layout."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.envs.shapes3d.fixtures import grid_labels, write_shapes3d


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty data directory, never the user's."""
    folder = tmp_path / "dyndis-data"
    monkeypatch.setenv("DYNDIS_DATA", str(folder))
    return folder


@pytest.fixture(scope="session")
def _pristine_file(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    labels = grid_labels()
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 64, 64, 3), dtype=np.uint8)
    path = write_shapes3d(tmp_path_factory.mktemp("pristine") / "3dshapes.h5", images, labels)
    return path, images, labels


@pytest.fixture
def shapes3d_file(_pristine_file, tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 3dshapes.h5 in the exact real layout over :data:`GRID`: its path (a fresh copy, tests may break
    it), images uint8 (96, 64, 64, 3) of random pixels and labels float64 (96, 6)."""
    path, images, labels = _pristine_file
    folder = tmp_path / "files"
    folder.mkdir()
    return Path(shutil.copy(path, folder / "3dshapes.h5")), images, labels
