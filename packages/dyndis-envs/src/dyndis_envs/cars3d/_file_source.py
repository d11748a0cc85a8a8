"""The real Cars3D data: a ``cars/`` folder with ``list.txt`` and one ``car_XXX_mesh.mat`` per car.

Format (``data/cars/`` of ``nips2015-analogy-data.tar.gz``, Reed et al. 2015): ``list.txt`` names the cars
in order, one per line, without the ``.mat`` extension; each ``<name>.mat`` (MATLAB v5, read with
:func:`scipy.io.loadmat`) holds ``im``, uint8 of shape (128, 128, 3, 24, 4) = (H, W, RGB, azimuth,
elevation), and a ``mask`` this source does not use. Images are resized to ``image_size`` with Pillow's
Lanczos filter and kept as uint8; only the chosen cars are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import scipy.io
from PIL import Image
from scipy.io.matlab import MatReadError

from dyndis_envs.cars3d._sources import Cars3DViewTable, check_image_size
from dyndis_envs.datasets import CARS3D_MESH_SHAPE

__all__ = ["Cars3DFileSource", "load_car_views", "read_object_list"]


def read_object_list(folder: str | Path) -> tuple[str, ...]:
    """The car names in ``folder / "list.txt"``, in order (blank lines ignored).

    Raises:
        FileNotFoundError: If ``list.txt`` is missing.
        ValueError: If it names no car, or a car twice.
    """
    path = Path(folder) / "list.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"No list.txt in {str(folder)!r}: a Cars3D folder (data/cars/ of nips2015-analogy-data.tar.gz) "
            "lists its cars in list.txt, one name per line. `dyndis-envs download cars3d` fetches it."
        )
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{str(path)!r} names no car.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{str(path)!r} names these cars more than once: {repeated}.")
    return tuple(names)


def load_car_views(path: str | Path, image_size: int) -> npt.NDArray[np.uint8]:
    """Every view of one car from its ``.mat`` file, resized, shape (n_elevations, n_azimuths, H, W, 3).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If it is not a readable ``.mat`` file or its ``im`` is not uint8 of :data:`CARS3D_MESH_SHAPE`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Cars3D file {str(path)!r} is missing (its name is in list.txt).")
    try:
        contents = scipy.io.loadmat(path, variable_names=["im"])
    except (MatReadError, ValueError, OSError, NotImplementedError) as exc:
        raise ValueError(f"Cars3D file {str(path)!r} is not a readable MATLAB .mat file: {exc}") from exc
    if "im" not in contents:
        found = sorted(name for name, _, _ in scipy.io.whosmat(path))
        raise ValueError(f"Cars3D file {str(path)!r} has no variable 'im' (found {found}).")
    im = contents["im"]
    if im.dtype != np.uint8 or im.shape != CARS3D_MESH_SHAPE:
        raise ValueError(
            f"Cars3D file {str(path)!r}: 'im' must be uint8 of shape {CARS3D_MESH_SHAPE} (H, W, RGB, azimuth, "
            f"elevation), got {im.dtype} of shape {im.shape}."
        )
    views = np.transpose(im, (4, 3, 0, 1, 2))  # (elevation, azimuth, H, W, RGB)
    if image_size == CARS3D_MESH_SHAPE[0]:
        return np.ascontiguousarray(views)
    out = np.empty((*views.shape[:2], image_size, image_size, 3), dtype=np.uint8)
    for elevation in range(views.shape[0]):
        for azimuth in range(views.shape[1]):
            picture = Image.fromarray(views[elevation, azimuth]).resize(
                (image_size, image_size), Image.Resampling.LANCZOS
            )
            out[elevation, azimuth] = np.asarray(picture)
    return out


class Cars3DFileSource(Cars3DViewTable):
    """The real Cars3D images of the chosen cars, in RAM.

    Args:
        folder: The ``cars/`` folder (with ``list.txt``).
        image_size: Height and width of the images (>= 16); the files hold 128 x 128.
        objects: Indices (into ``list.txt``) of the cars to load, shape (n,); None loads all.
        object_names: The names in ``list.txt`` if already read.
    """

    backend: ClassVar[str] = "file"

    def __init__(
        self,
        folder: str | Path,
        image_size: int = 64,
        objects: npt.NDArray[np.int64] | None = None,
        object_names: Sequence[str] | None = None,
    ) -> None:
        image_size = check_image_size(image_size)
        folder = Path(folder)
        names = tuple(object_names) if object_names is not None else read_object_list(folder)
        objects = np.arange(len(names)) if objects is None else np.asarray(objects, dtype=np.int64)
        views = np.stack([load_car_views(folder / f"{names[i]}.mat", image_size) for i in objects.tolist()])
        super().__init__(names, objects, views)
