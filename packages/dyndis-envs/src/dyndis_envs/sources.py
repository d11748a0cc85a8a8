"""Observation sources: map batches of factor states to batches of uint8 images.

A source knows every factor with all its values (``factors``) and renders or looks up the image of
any combination. Environments choose a subset of values through a :class:`~dyndis_envs.factors.FactorSpace`
and ask the source for images of value indices (indices into each factor's full ``values``).

Small state spaces are served from a :class:`FrameTable`: every chosen state rendered once, then gathered
with one NumPy take per batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from dyndis_envs.factors import Factor, FactorSpace

__all__ = ["DEFAULT_TABLE_BYTES", "FrameLookup", "FrameTable", "ObservationSource"]

#: Largest frame table an environment builds by default (bytes); bigger state spaces render on demand.
DEFAULT_TABLE_BYTES = 512 * 2**20


class ObservationSource(ABC):
    """Renders (or reads) the image of every factor combination.

    Subclasses set ``factors`` and ``image_shape`` and implement :meth:`render`.

    Attributes:
        factors: Every factor with all its values, in state order.
        image_shape: ``(H, W, C)`` of one image.
        backend: ``"procedural"`` or ``"file"``: where the images come from.
        is_lookup: True when :meth:`render` is already a table lookup (data in RAM, a prerendered cache),
            so environments need not build a :class:`FrameTable` on top of it.
    """

    factors: tuple[Factor, ...]
    image_shape: tuple[int, int, int]
    backend: ClassVar[str] = "procedural"
    is_lookup: ClassVar[bool] = False

    @abstractmethod
    def render(self, value_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Images of a batch of states.

        Args:
            value_indices: shape (B, n_factors), indices into each factor's full ``values``.

        Returns:
            A new uint8 array of shape (B, H, W, C), owned by the caller.
        """

    @property
    def frame_bytes(self) -> int:
        """Bytes of one image."""
        h, w, c = self.image_shape
        return h * w * c


class FrameTable:
    """Every state of a factor space, rendered once; batches are then gathered with one ``np.take``.

    Args:
        source: The source to render from.
        factor_space: The chosen values; the table holds ``factor_space.n_states`` frames.
        chunk: States rendered per call to the source while building.
    """

    def __init__(self, source: ObservationSource, factor_space: FactorSpace, chunk: int = 4096) -> None:
        self.factor_space = factor_space
        states = factor_space.all_states()
        self.frames = np.empty((factor_space.n_states, *source.image_shape), dtype=np.uint8)
        for start in range(0, len(states), chunk):
            batch = factor_space.to_value_indices(states[start : start + chunk])
            self.frames[start : start + len(batch)] = source.render(batch)

    def frame(self, flat_index: int) -> npt.NDArray[np.uint8]:
        """A fresh copy of one frame."""
        return self.frames[flat_index].copy()

    def gather(self, flat_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """A fresh (B, H, W, C) array of the frames at ``flat_indices``."""
        return np.take(self.frames, flat_indices, axis=0)


class FrameLookup:
    """Images of states of one factor space: from a :class:`FrameTable` when it fits, else from the source."""

    def __init__(self, source: ObservationSource, factor_space: FactorSpace, max_table_bytes: int) -> None:
        self.source = source
        self.factor_space = factor_space
        use_table = not source.is_lookup and factor_space.n_states * source.frame_bytes <= max_table_bytes
        self.table: FrameTable | None = FrameTable(source, factor_space) if use_table else None

    def one(self, state: list[int]) -> npt.NDArray[np.uint8]:
        """The image of one state (a list of indices into the chosen values)."""
        if self.table is not None:
            flat = 0
            for index, stride in zip(state, self.factor_space.strides):
                flat += index * stride
            return self.table.frame(flat)
        return self.source.render(self.factor_space.to_value_indices(np.asarray([state])))[0]

    def batch(self, states: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Images of a batch of states, shape (B, n_factors) -> (B, H, W, C)."""
        if self.table is not None:
            return self.table.gather(self.factor_space.flat_index(states))
        return self.source.render(self.factor_space.to_value_indices(states))
