"""Fixtures of the Cars3D tests: an isolated data directory and a small folder in the real file format."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from dyndis_envs.cars3d import read_object_list
from tests.envs.cars3d.fixtures import CAR_NAMES, write_car


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty data directory (caches and datasets), never the user's."""
    folder = tmp_path / "dyndis-data"
    monkeypatch.setenv("DYNDIS_DATA", str(folder))
    return folder


@pytest.fixture(scope="session")
def _pristine_cars(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("pristine") / "cars"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {}
    for name in CAR_NAMES:
        images[name] = rng.integers(0, 256, (128, 128, 3, 24, 4), dtype=np.uint8)
        write_car(folder, name, images[name])
    (folder / "list.txt").write_text("\n".join(CAR_NAMES) + "\n\n")
    return folder, images


@pytest.fixture
def cars_folder(_pristine_cars, tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """A ``cars/`` folder in the exact real format: list.txt and three .mat files of random images.

    Returns the folder (a fresh copy: tests may break it) and each car's ``im`` array, uint8
    (128, 128, 3, 24, 4) = (H, W, RGB, azimuth, elevation).
    """
    pristine, images = _pristine_cars
    folder = shutil.copytree(pristine, tmp_path / "cars")
    assert read_object_list(folder) == CAR_NAMES
    return folder, images
