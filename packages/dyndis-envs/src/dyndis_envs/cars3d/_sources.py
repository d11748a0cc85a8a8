"""Observation sources of Cars3D: procedural rendering on demand, and tables of every view of some cars.

* :class:`Cars3DRenderSource` renders the requested views only (nothing is stored): environments over a
  few views let their frame table prerender exactly the chosen states.
* :class:`Cars3DViewTable` holds all 4 x 24 views of the chosen cars in RAM and serves batches with one
  NumPy gather. :class:`Cars3DRenderedTable` fills it from the verified disk cache, rendering (and
  storing) what is missing; :class:`~dyndis_envs.cars3d._file_source.Cars3DFileSource` fills it from the
  real data's ``.mat`` files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from dyndis_envs.cars3d._cache import ViewCache, cache_key
from dyndis_envs.cars3d._factors import AZIMUTHS, ELEVATIONS, cars3d_factors
from dyndis_envs.cars3d._mesh import CarMesh, build_mesh
from dyndis_envs.cars3d._models import MODEL_SEED, CarModel, generate_models
from dyndis_envs.cars3d._renderer import render_views, renderer_parameters
from dyndis_envs.data_paths import data_dir
from dyndis_envs.sources import ObservationSource
from dyndis_envs.validation import check_int

__all__ = [
    "MAX_IMAGE_SIZE",
    "MIN_IMAGE_SIZE",
    "MODELS",
    "Cars3DRenderSource",
    "Cars3DRenderedTable",
    "Cars3DViewTable",
    "check_image_size",
]

#: The procedural source's car models (183), in ``object`` order.
MODELS: tuple[CarModel, ...] = generate_models()
_N_VIEWS = len(ELEVATIONS) * len(AZIMUTHS)


#: Smallest and largest ``image_size`` of both Cars3D sources. The bound keeps one env's memory in check: the
#: renderer draws on a canvas 4 times larger per side, a car's 96 views take 18.9 MB at 256 (so every view of
#: all 183 cars, 3.5 GB), and the real files hold 128 x 128 images.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 256


def check_image_size(image_size: object) -> int:
    """Validate ``image_size``: an integer in [MIN_IMAGE_SIZE, MAX_IMAGE_SIZE]."""
    return check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE, maximum=MAX_IMAGE_SIZE)


def _all_views(mesh: CarMesh, image_size: int) -> npt.NDArray[np.uint8]:
    """Every view of one car, shape (n_elevations, n_azimuths, H, W, 3)."""
    elevation, azimuth = np.divmod(np.arange(_N_VIEWS), len(AZIMUTHS))
    views = render_views(mesh, elevation, azimuth, image_size)
    return views.reshape(len(ELEVATIONS), len(AZIMUTHS), image_size, image_size, 3)


class Cars3DRenderSource(ObservationSource):
    """Procedural cars rendered on demand, only the views asked for.

    Args:
        image_size: Height and width of the images (16 to 256).
    """

    backend: ClassVar[str] = "procedural"

    def __init__(self, image_size: int = 64) -> None:
        image_size = check_image_size(image_size)
        self.factors = cars3d_factors([m.name for m in MODELS])
        self.image_shape = (image_size, image_size, 3)
        self._meshes: dict[int, CarMesh] = {}

    def _mesh(self, index: int) -> CarMesh:
        if index not in self._meshes:
            self._meshes[index] = build_mesh(MODELS[index])
        return self._meshes[index]

    def render(self, value_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Images of a batch of states, (B, 3) value indices (elevation, azimuth, object) -> (B, H, W, 3)."""
        value_indices = np.asarray(value_indices, dtype=np.int64)
        out = np.empty((len(value_indices), *self.image_shape), dtype=np.uint8)
        for index in np.unique(value_indices[:, 2]).tolist():
            rows = np.flatnonzero(value_indices[:, 2] == index)
            views = value_indices[rows]
            out[rows] = render_views(self._mesh(index), views[:, 0], views[:, 1], self.image_shape[0])
        return out


class Cars3DViewTable(ObservationSource):
    """Every view of some cars in RAM; a batch is one NumPy gather.

    Args:
        object_names: Names of all cars (the values of ``object``).
        objects: Indices (into ``object_names``) of the cars held, shape (n,).
        views: Their views, uint8 of shape (n, n_elevations, n_azimuths, H, W, 3).
    """

    is_lookup: ClassVar[bool] = True

    def __init__(
        self, object_names: Sequence[str], objects: npt.NDArray[np.int64], views: npt.NDArray[np.uint8]
    ) -> None:
        self.factors = cars3d_factors(object_names)
        self.image_shape = views.shape[-3:]  # type: ignore[assignment]
        self.objects = np.asarray(objects, dtype=np.int64)
        self._frames = views.reshape(-1, *self.image_shape)
        self._row = np.full(len(object_names), -1, dtype=np.int64)
        self._row[self.objects] = np.arange(len(self.objects))

    def render(self, value_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Images of a batch of states, (B, 3) value indices (elevation, azimuth, object) -> (B, H, W, 3).

        Raises:
            ValueError: For a car that is not held.
        """
        value_indices = np.asarray(value_indices, dtype=np.int64)
        rows = self._row[value_indices[:, 2]]
        if (rows < 0).any():
            missing = sorted(set(value_indices[rows < 0, 2].tolist()))
            raise ValueError(f"Cars {missing} are not loaded; this source holds cars {self.objects.tolist()}.")
        flat = (rows * len(ELEVATIONS) + value_indices[:, 0]) * len(AZIMUTHS) + value_indices[:, 1]
        return np.take(self._frames, flat, axis=0)


class Cars3DRenderedTable(Cars3DViewTable):
    """Every view of the chosen procedural cars, from the verified disk cache or rendered (then cached).

    The cache is in ``data_dir() / "cache"`` (see :meth:`view_cache`); a progress bar shows when many cars
    have to be rendered.

    Args:
        image_size: Height and width of the images (16 to 256).
        objects: Indices of the cars to hold, shape (n,).
    """

    backend: ClassVar[str] = "procedural"

    def __init__(self, image_size: int, objects: npt.NDArray[np.int64]) -> None:
        image_size = check_image_size(image_size)
        objects = np.asarray(objects, dtype=np.int64)
        views = np.empty((len(objects), len(ELEVATIONS), len(AZIMUTHS), image_size, image_size, 3), dtype=np.uint8)
        store = self.view_cache(image_size)
        missing = []
        for row, index in enumerate(objects.tolist()):
            cached = store.load(MODELS[index].name)
            if cached is None:
                missing.append((row, index))
            else:
                views[row] = cached
        quiet = len(missing) <= 8 or None  # None: a bar only on a terminal
        for row, index in tqdm(missing, desc="Rendering Cars3D views", unit="car", disable=quiet):
            views[row] = _all_views(build_mesh(MODELS[index]), image_size)
            store.store(MODELS[index].name, views[row])
        super().__init__([m.name for m in MODELS], objects, views)

    @staticmethod
    def view_cache(image_size: int) -> ViewCache:
        """The cache of the procedural views at ``image_size``, keyed by everything the images depend on."""
        parameters = {
            "renderer": renderer_parameters(),
            "models": {"seed": MODEL_SEED, "hash": cache_key({"models": [repr(m) for m in MODELS]})},
            "image_size": image_size,
        }
        shape = (len(ELEVATIONS), len(AZIMUTHS), image_size, image_size, 3)
        return ViewCache(data_dir() / "cache" / f"cars3d-{cache_key(parameters)}", parameters, shape)
