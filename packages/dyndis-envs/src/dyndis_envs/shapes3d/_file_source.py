"""The real 3D Shapes data: DeepMind's ``3dshapes.h5``, the chosen subset loaded into RAM as uint8.

Layout of the file (github.com/deepmind/3d-shapes): ``images``, uint8 (480000, 64, 64, 3), and ``labels``,
float64 (480000, 6), each row the factor *values* of its image in the order floor_hue, wall_hue,
object_hue, scale, shape, orientation; rows run row-major over those factors, orientation fastest.

This source derives each factor's values from the labels with ``np.unique`` (never comparing floats for
equality), so any complete grid in this layout works, e.g. a file with fewer values per factor. It checks
that every combination of values appears exactly once, and looks rows up through that mapping rather
than assuming the order. A file of the published size must also have the published SHA-256 (see
:class:`Shapes3DFileSource`). Only the chosen states are read, in increasing row order and in blocks of rows
(the file is gzip-chunked, so reading in order decompresses each chunk once), straight into one
preallocated uint8 array, so loading the full set peaks at its 5.9 GB plus one block.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import numpy.typing as npt

from dyndis_envs.datasets import DATASETS, verify_dataset_file
from dyndis_envs.factors import Factor, FactorSpace, Subset
from dyndis_envs.shapes3d._factors import FACTOR_NAMES
from dyndis_envs.sources import ObservationSource
from dyndis_envs.validation import check_bool

__all__ = ["IMAGE_SHAPE", "Shapes3DFileSource", "read_label_grid"]

#: Shape of one image in the file.
IMAGE_SHAPE = (64, 64, 3)
_EXPECTED = f"'images' uint8 (N, {', '.join(map(str, IMAGE_SHAPE))}) and 'labels' float (N, {len(FACTOR_NAMES)})"


def _datasets(file: h5py.File, path: Path) -> tuple[h5py.Dataset, h5py.Dataset]:
    """The ``images`` and ``labels`` datasets, checked for presence, shapes and dtypes."""
    found = sorted(file.keys())
    for key in ("images", "labels"):
        if not isinstance(file.get(key), h5py.Dataset):
            raise ValueError(f"{str(path)!r} has no dataset {key!r} (found {found}); a 3dshapes.h5 holds {_EXPECTED}.")
    images, labels = file["images"], file["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"{str(path)!r}: 'images' must be uint8 of shape (N, {', '.join(map(str, IMAGE_SHAPE))}), "
            f"got {images.dtype} of shape {images.shape}."
        )
    if not np.issubdtype(labels.dtype, np.floating) or labels.shape != (len(images), len(FACTOR_NAMES)):
        raise ValueError(
            f"{str(path)!r}: 'labels' must be float of shape ({len(images)}, {len(FACTOR_NAMES)}) (one row of "
            f"{', '.join(FACTOR_NAMES)} per image), got {labels.dtype} of shape {labels.shape}."
        )
    if len(images) == 0:
        raise ValueError(f"{str(path)!r} holds no images.")
    return images, labels


def read_label_grid(labels: npt.NDArray[np.floating], path: str | os.PathLike[str] = "3dshapes.h5") -> tuple[
    tuple[Factor, ...], npt.NDArray[np.int64]
]:
    """The factors that the labels span, and the file row of every state.

    Args:
        labels: The file's labels, shape (N, 6).
        path: The file, for error messages.

    Returns:
        The factors (each one's sorted distinct values) and, for each state in row-major order over them,
        the row that holds its image, shape (N,).

    Raises:
        ValueError: For non-finite labels, or labels that are not every combination of values exactly once.
    """
    if not np.isfinite(labels).all():
        raise ValueError(f"{str(path)!r}: 'labels' holds non-finite values.")
    values, indices = [], []
    for column in labels.T:
        distinct, index = np.unique(column, return_inverse=True)
        values.append(distinct)
        indices.append(index.reshape(-1))
    sizes = tuple(len(v) for v in values)
    states = np.ravel_multi_index(tuple(indices), sizes)
    if int(np.prod(sizes, dtype=np.int64)) != len(labels) or len(np.unique(states)) != len(labels):
        raise ValueError(
            f"{str(path)!r}: 'labels' must hold every combination of its factor values exactly once; its "
            f"{len(labels)} rows have {dict(zip(FACTOR_NAMES, sizes))} distinct values per factor."
        )
    rows = np.empty(len(labels), dtype=np.int64)
    rows[states] = np.arange(len(labels))
    factors = tuple(Factor(name, tuple(float(v) for v in distinct)) for name, distinct in zip(FACTOR_NAMES, values))
    return factors, rows


def _read_rows(images: h5py.Dataset, rows: npt.NDArray[np.int64], block: int) -> npt.NDArray[np.uint8]:
    """``images[rows]`` as a new uint8 array, read in increasing row order, ``block`` rows at a time."""
    out = np.empty((len(rows), *images.shape[1:]), dtype=np.uint8)
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    for start in range(0, len(images), block):
        lo, hi = np.searchsorted(ordered, [start, start + block])
        if lo == hi:
            continue
        first, last = int(ordered[lo]), int(ordered[hi - 1])
        targets = order[lo:hi]
        if last - first == hi - lo - 1 and targets[-1] - targets[0] == hi - lo - 1 and (np.diff(targets) == 1).all():
            # a run of consecutive rows going to consecutive places: no temporary copy
            images.read_direct(out, np.s_[first : last + 1], np.s_[int(targets[0]) : int(targets[-1]) + 1])
        else:
            out[targets] = images[first : last + 1][ordered[lo:hi] - first]
    return out


class Shapes3DFileSource(ObservationSource):
    """The real images of the chosen states of a ``3dshapes.h5``, held in RAM as uint8.

    Verification (``verify=True``, the default): a file of exactly the published size (267,573,662 bytes)
    is taken to be the published ``3dshapes.h5`` and its SHA-256 must be the published one, or loading fails
    with an :class:`~dyndis_envs.download.IntegrityError` naming both digests and how to download the file
    again; a single flipped byte is caught, although HDF5 would read it without complaint. The check is
    :func:`~dyndis_envs.datasets.verify_dataset_file`, the one ``dyndis-envs verify shapes3d`` runs. The
    digest is recorded in ``data_dir() / "cache" / "file-digests.json"`` against the file's path, size and
    modification time, so the 268 MB are hashed once, not at every load. A file of any other size is not the
    published file (a subset, or another grid in the same layout) and has no digest to check against: it is
    loaded after the layout checks only, and :attr:`verified` says so.

    Args:
        path: The ``3dshapes.h5`` file.
        factors: Chosen values per factor name (see :data:`~dyndis_envs.factors.Subset`), counted within the
            values the file's labels hold; only these states are read.
        block: Rows read from the file at a time.
        verify: Check a file of the published size against the published SHA-256 (see above).

    Attributes:
        factor_space: The chosen values (over the factors the file's labels span): the states held.
        verified: True when the file's SHA-256 matched the published one (hashed now or recorded earlier);
            False when it was not checked (``verify=False``, or a file of another size).

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If the file is not readable HDF5 (truncated, corrupt), lacks ``images`` or ``labels``,
            has the wrong shapes or dtypes, or its labels are not a complete grid; or for bad ``factors``.
            :class:`~dyndis_envs.download.IntegrityError` (a ``ValueError``): a file of the published size
            whose SHA-256 is not the published one.
    """

    backend: ClassVar[str] = "file"
    is_lookup: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        factors: Mapping[str, Subset] | None = None,
        block: int = 4096,
        *,
        verify: bool = True,
    ) -> None:
        path = Path(path)
        verify = check_bool("verify", verify)
        if not path.is_file():
            raise FileNotFoundError(f"No 3dshapes.h5 at {str(path)!r}; `dyndis-envs download shapes3d` fetches it.")
        published = DATASETS["shapes3d"]
        self.verified = verify and path.stat().st_size == published.expected_size
        if self.verified:
            verify_dataset_file(published.name, path, cached=True)
        try:
            with h5py.File(path, "r") as file:
                images, labels = _datasets(file, path)
                self.factors, rows = read_label_grid(labels[()], path)
                space = FactorSpace(self.factors, factors)
                chosen = space.to_value_indices(space.all_states())  # in the order the table keeps them
                sizes = tuple(len(f.values) for f in self.factors)
                wanted = rows[np.ravel_multi_index(tuple(chosen.T), sizes)]
                self._frames = _read_rows(images, wanted, block)
        except OSError as exc:  # h5py's errors for files that are not HDF5, truncated, or fail to decompress
            raise ValueError(
                f"{str(path)!r} is not a readable 3dshapes.h5 ({exc}); it may be truncated or corrupt: "
                "`dyndis-envs verify shapes3d` checks it, `dyndis-envs download shapes3d` fetches it again."
            ) from exc
        self.path = path
        self.image_shape = IMAGE_SHAPE
        self.factor_space = space
        self.selected = space.selected
        self._strides = np.asarray(space.strides, dtype=np.int64)
        # position of each value index within the chosen values of its factor, -1 if not chosen
        self._positions = []
        for factor, chosen in zip(self.factors, space.selected):
            position = np.full(len(factor.values), -1, dtype=np.int64)
            position[chosen] = np.arange(len(chosen))
            self._positions.append(position)

    @property
    def n_images(self) -> int:
        """Number of images held (the chosen states)."""
        return len(self._frames)

    def render(self, value_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """The stored images of a batch of states, (B, 6) value indices -> new (B, 64, 64, 3) uint8.

        Raises:
            ValueError: For a value that was not chosen (not loaded).
        """
        v = np.asarray(value_indices, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != len(self.factors):
            raise ValueError(f"`value_indices` must have shape (B, {len(self.factors)}), got {v.shape}.")
        positions = np.stack([p[v[:, k]] for k, p in enumerate(self._positions)], axis=1)
        if (positions < 0).any():
            b, k = np.argwhere(positions < 0)[0]
            raise ValueError(
                f"{self.factors[k].name} value index {v[b, k]} is not loaded; this source holds value indices "
                f"{self.selected[k].tolist()}."
            )
        return np.take(self._frames, positions @ self._strides, axis=0)
