"""The procedural Shapes3D source: images composed from per-geometry colour layers, traced on first use.

Only ``orientation``, ``scale`` and ``shape`` change what the camera sees (15 x 8 x 4 = 480 geometries); the
three hues only change colours. So each orientation's empty room and each geometry's object-and-shadow
pixels are traced once (:mod:`._renderer`) into per-hue uint8 layers, and an image is the sum of a floor
layer, a wall layer and an object layer: two gathers for the whole batch plus one small scatter per image.
A geometry is traced the first time a state needs it; :meth:`Shapes3DSource.warm_up` traces all 480 (or
those of given states) at once. The layers take about 35 MB at 64 x 64 and grow with the number of pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from dyndis_envs.shapes3d._factors import HUES, ORIENTATIONS, SCALES, SHAPES, shapes3d_factors
from dyndis_envs.shapes3d._renderer import Layers, background_layers, object_layers
from dyndis_envs.sources import ObservationSource
from dyndis_envs.validation import check_int

__all__ = ["MAX_IMAGE_SIZE", "MIN_IMAGE_SIZE", "Shapes3DSource", "check_image_size"]

#: Smallest and largest ``image_size`` of the procedural source (the layers of 256 x 256 take about 0.6 GB).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 256
_N_GEOMETRIES = len(ORIENTATIONS) * len(SCALES) * len(SHAPES)


def check_image_size(image_size: object) -> int:
    """Validate ``image_size``: an integer in [MIN_IMAGE_SIZE, MAX_IMAGE_SIZE]."""
    return check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE, maximum=MAX_IMAGE_SIZE)


class _ObjectPixels(NamedTuple):
    """The pixels (flat indices, int32 (P,)) where a geometry's object or shadow shows, and their layers."""

    pixels: npt.NDArray[np.int32]
    layers: Layers


def _geometry_index(
    orientation: npt.NDArray[np.int64], scale: npt.NDArray[np.int64], shape: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Index in [0, 480) of each (orientation, scale, shape) value-index triple."""
    return (orientation * len(SCALES) + scale) * len(SHAPES) + shape


class Shapes3DSource(ObservationSource):
    """Procedural 3D Shapes images (see :mod:`._renderer` for the scene), rendered natively at any size.

    Deterministic: a state always gives the same image, whatever else was rendered before or with it.

    Args:
        image_size: Height and width of the images, in [16, 256].
    """

    backend: ClassVar[str] = "procedural"

    def __init__(self, image_size: int = 64) -> None:
        self.image_size = check_image_size(image_size)
        self.factors = shapes3d_factors()
        self.image_shape = (self.image_size, self.image_size, 3)
        self._clear_layers()

    def _clear_layers(self) -> None:
        pixels, n_hues = self.image_size**2, len(HUES)
        # row orientation * 10 + hue: that orientation's empty room, floor (or walls and sky) in that hue
        self._room_floor = np.zeros((len(ORIENTATIONS) * n_hues, pixels, 3), dtype=np.uint8)
        self._room_wall = np.zeros((len(ORIENTATIONS) * n_hues, pixels, 3), dtype=np.uint8)
        self._has_room = np.zeros(len(ORIENTATIONS), dtype=bool)
        self._objects: list[_ObjectPixels | None] = [None] * _N_GEOMETRIES

    # the layers are a cache: pickles (e.g. for subprocess vector envs) leave them out and trace again
    def __getstate__(self) -> dict[str, Any]:
        return {"image_size": self.image_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["image_size"])  # type: ignore[misc]

    @property
    def layer_bytes(self) -> int:
        """Bytes held by the layers traced so far."""
        room = 2 * len(HUES) * self.image_size**2 * 3 * int(self._has_room.sum())
        objects = sum(o.pixels.nbytes + sum(layer.nbytes for layer in o.layers) for o in self._objects if o)
        return room + objects

    def _trace(self, orientations: Iterable[int], geometries: Iterable[int]) -> None:
        """Trace the rooms and geometries (by index) not traced yet."""
        n_hues = len(HUES)
        for o in orientations:
            if not self._has_room[o]:
                room = background_layers(ORIENTATIONS[o], self.image_size)
                self._room_floor[o * n_hues : (o + 1) * n_hues] = room.floor
                self._room_wall[o * n_hues : (o + 1) * n_hues] = room.wall
                self._has_room[o] = True
        for g in geometries:
            if self._objects[g] is None:
                rest, shape = divmod(g, len(SHAPES))
                orientation, scale = divmod(rest, len(SCALES))
                pixels, layers = object_layers(ORIENTATIONS[orientation], shape, SCALES[scale], self.image_size)
                self._objects[g] = _ObjectPixels(pixels.astype(np.int32), layers)

    def warm_up(self, value_indices: npt.NDArray[np.int64] | None = None) -> None:
        """Trace the geometries of the given states (B, 6) now, or all 480 without an argument."""
        if value_indices is None:
            self._trace(range(len(ORIENTATIONS)), range(_N_GEOMETRIES))
            return
        v = np.asarray(value_indices, dtype=np.int64).reshape(-1, len(self.factors))
        geometries = _geometry_index(v[:, 5], v[:, 3], v[:, 4])
        self._trace(np.unique(v[:, 5]).tolist(), np.unique(geometries).tolist())

    def render(self, value_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Images of a batch of states, (B, 6) value indices in factor order -> (B, H, W, 3) uint8."""
        v = np.asarray(value_indices, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != len(self.factors):
            raise ValueError(f"`value_indices` must have shape (B, {len(self.factors)}), got {v.shape}.")
        floor, wall, obj, scale, shape, orientation = v.T
        geometries = _geometry_index(orientation, scale, shape)
        self._trace(np.unique(orientation).tolist(), np.unique(geometries).tolist())
        n_hues = len(HUES)
        out = np.take(self._room_floor, orientation * n_hues + floor, axis=0)
        out += np.take(self._room_wall, orientation * n_hues + wall, axis=0)
        for image, g, f, w, o in zip(out, geometries.tolist(), floor.tolist(), wall.tolist(), obj.tolist()):
            pixels, layers = self._objects[g]  # type: ignore[misc]
            image[pixels] = layers.floor[f] + layers.wall[w] + layers.object[o]
        return out.reshape(len(v), *self.image_shape)
