"""A small ``cars/`` folder in the real Cars3D format, for the Cars3D tests (imported explicitly)."""

from pathlib import Path

import numpy as np
import scipy.io

#: Names of the cars in the test folder, in list.txt order (deliberately not sorted).
CAR_NAMES = ("car_007_mesh", "car_002_mesh", "car_031_mesh")


def write_car(folder: Path, name: str, im: np.ndarray) -> Path:
    """Write one car as the real release does: a MATLAB v5 file with ``im`` and a ``mask``."""
    path = folder / f"{name}.mat"
    scipy.io.savemat(path, {"im": im, "mask": (im[:, :, 0] > 128).astype(np.uint8)}, do_compression=True)
    return path
