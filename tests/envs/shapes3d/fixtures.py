"""Small 3dshapes.h5 files in the real layout, for the Shapes3D tests (imported explicitly)."""

from pathlib import Path

import h5py
import numpy as np

from dyndis_envs.shapes3d import HUES, ORIENTATIONS, SCALES, SHAPES

#: The values (indices into the real ones) in the test file: 2 x 2 x 2 x 2 x 2 x 3 = 96 images.
GRID = {
    "floor_hue": [0, 3],
    "wall_hue": [1, 6],
    "object_hue": [2, 9],
    "scale": [0, 7],
    "shape": [0, 3],
    "orientation": [0, 7, 14],
}
_VALUES = (HUES, HUES, HUES, SCALES, SHAPES, ORIENTATIONS)


def grid_labels(grid: dict[str, list[int]] = GRID) -> np.ndarray:
    """Labels of every combination of ``grid``'s values, row-major with orientation fastest, float64 (N, 6)."""
    axes = [np.asarray(values)[indices] for values, indices in zip(_VALUES, grid.values())]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1).astype(np.float64)


def write_shapes3d(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write a 3dshapes.h5 as the real one is stored: gzip-chunked uint8 ``images`` and float64 ``labels``."""
    with h5py.File(path, "w") as file:
        file.create_dataset("images", data=images, chunks=(8, *images.shape[1:]), compression="gzip")
        file.create_dataset("labels", data=labels)
    return path
