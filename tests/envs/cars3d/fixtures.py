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


#: list.txt contents that the env and ``dyndis-envs verify cars3d`` both refuse, with the end of the error
#: (the message starts with the path of list.txt). ``../../outside_car`` names a real-format file that the
#: tests put two folders above ``cars/``, where the env used to read it from.
BAD_LISTS: dict[str, tuple[str, str]] = {
    "repeated": (
        "car_007_mesh\ncar_002_mesh\ncar_007_mesh\n",
        "line 3: 'car_007_mesh' repeats the car 'car_007_mesh' of line 1.",
    ),
    "repeated_with_suffix": (
        "car_007_mesh\n\ncar_007_mesh.mat\n",
        "line 3: 'car_007_mesh.mat' repeats the car 'car_007_mesh' of line 1.",
    ),
    "parent_path": (
        "car_007_mesh\n../../outside_car\n",
        "line 2: '../../outside_car' contains '/': list.txt names files inside its own folder, not paths.",
    ),
    "backslash": (
        "car_007_mesh\n..\\..\\outside_car\n",
        "line 2: '..\\\\..\\\\outside_car' contains '\\\\': list.txt names files inside its own folder, not paths.",
    ),
    "absolute": ("/tmp/outside_car\n", "line 1: '/tmp/outside_car' contains '/': list.txt names files inside"),
    "parent": ("car_007_mesh\n..\n", "line 2: '..' names a folder, not a car."),
    "parent_with_suffix": ("...mat\n", "line 1: '...mat' names a folder, not a car."),
    "empty_name": ("car_007_mesh\n  .mat  \n", "line 2: '.mat' is an empty car name."),
    "no_car": ("\n  \n", "names no car."),
}

#: A list.txt naming the test cars with and without the ``.mat`` suffix: accepted, the same cars as CAR_NAMES.
SUFFIXED_LIST = "car_007_mesh.mat\ncar_002_mesh\n car_031_mesh.mat \n"
