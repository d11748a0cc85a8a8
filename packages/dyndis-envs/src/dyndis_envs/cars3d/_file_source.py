"""The real Cars3D data: a ``cars/`` folder with ``list.txt`` and one ``car_XXX_mesh.mat`` per car.

Format (``data/cars/`` of ``nips2015-analogy-data.tar.gz``, Reed et al. 2015): ``list.txt`` names the cars
in order, one per line, without the ``.mat`` extension; each ``<name>.mat`` (MATLAB v5, read with
:func:`scipy.io.loadmat`) holds ``im``, uint8 of shape (128, 128, 3, 24, 4) = (H, W, RGB, azimuth,
elevation), and a ``mask`` this source does not use. Images are resized to ``image_size`` with Pillow's
Lanczos filter and kept as uint8; only the chosen cars are read.

``list.txt`` and the ``.mat`` files are read by :func:`~dyndis_envs.datasets.read_cars_list` and
:func:`~dyndis_envs.datasets.read_car_mesh`, the functions behind ``dyndis-envs verify cars3d``, so the
command and the environment accept and refuse the same folders. Every bad data file raises a ``ValueError``
(an :class:`~dyndis_envs.download.IntegrityError`) naming the file and the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from dyndis_envs.cars3d._sources import Cars3DViewTable, check_image_size
from dyndis_envs.datasets import CARS3D_MESH_SHAPE, cars_mesh_path, read_car_mesh, read_cars_list

__all__ = ["Cars3DFileSource", "load_car_views", "read_object_list"]


def read_object_list(folder: str | Path) -> tuple[str, ...]:
    """The car names in ``folder / "list.txt"``, in order, checked by :func:`~dyndis_envs.datasets.read_cars_list`.

    That is the check ``dyndis-envs verify cars3d`` runs too: blank lines are ignored, an entry with the
    ``.mat`` extension names the same car as one without, and names must be plain file names of the folder.

    Raises:
        FileNotFoundError: If ``list.txt`` is missing.
        ValueError: (:class:`~dyndis_envs.download.IntegrityError`) If it names no car, or a line holds an
            empty name, ``.`` or ``..``, a path separator, or a car an earlier line named; the message names
            the line and its entry.
    """
    path = Path(folder) / "list.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"No list.txt in {str(folder)!r}: a Cars3D folder (data/cars/ of nips2015-analogy-data.tar.gz) "
            "lists its cars in list.txt, one name per line. `dyndis-envs download cars3d` fetches it."
        )
    return read_cars_list(path)


def load_car_views(path: str | Path, image_size: int) -> npt.NDArray[np.uint8]:
    """Every view of one car from its ``.mat`` file, resized, shape (n_elevations, n_azimuths, H, W, 3).

    The file is read by :func:`~dyndis_envs.datasets.read_car_mesh`, as ``dyndis-envs verify cars3d`` reads it.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: (:class:`~dyndis_envs.download.IntegrityError`) If it is not a readable ``.mat`` file,
            whatever the reader's error (the message names the file and the cause), or its ``im`` is not
            uint8 of :data:`CARS3D_MESH_SHAPE`.
    """
    image_size = check_image_size(image_size)
    im = read_car_mesh(path)
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
        image_size: Height and width of the images (16 to 256); the files hold 128 x 128.
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
        views = np.stack([load_car_views(cars_mesh_path(folder, names[i]), image_size) for i in objects.tolist()])
        super().__init__(names, objects, views)
