"""The real datasets behind the file backends: where to get them, how to check them, where they go.

Each :class:`Dataset` ends up at ``data_dir() / dataset.target``, the place its environment looks:
``3dshapes.h5`` for Shapes3D, the folder ``cars/`` for Cars3D. A dataset published inside an archive
(Cars3D) is downloaded, verified, and only its ``member_prefix`` folder is extracted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dyndis_envs import data_paths
from dyndis_envs._digest_cache import cached_file_digest
from dyndis_envs.archives import extract_tar
from dyndis_envs.download import Checksum, IntegrityError, download, file_digest

__all__ = [
    "CARS3D_MESH_SHAPE",
    "CARS3D_MESH_SUFFIX",
    "DATASETS",
    "Dataset",
    "cars_mesh_path",
    "check_cars_folder",
    "dataset_path",
    "download_dataset",
    "get_dataset",
    "read_car_mesh",
    "read_cars_list",
    "verify_dataset",
    "verify_dataset_file",
]

#: Shape and meaning of the ``im`` array in every ``car_XXX_mesh.mat``: (H, W, RGB, azimuth, elevation).
CARS3D_MESH_SHAPE = (128, 128, 3, 24, 4)
#: The extension of the Cars3D mesh files; ``list.txt`` names them without it.
CARS3D_MESH_SUFFIX = ".mat"


@dataclass(frozen=True)
class Dataset:
    """A dataset that ``dyndis-envs download`` fetches.

    Attributes:
        name: The registry key (``"shapes3d"``).
        description: One line for ``dyndis-envs list``.
        url: Where the download comes from.
        checksum: ``(algorithm, hex digest)`` of the downloaded file.
        expected_size: Bytes of the downloaded file, or None when unknown.
        target: The file or folder inside the data directory that the environment reads.
        archive: None when the download is ``target`` itself; else the file name of the downloaded archive.
        member_prefix: The archive's folder extracted into ``target`` (for an archive).
        check_folder: Checks an extracted ``target`` folder and returns a one-line summary (for an archive).
    """

    name: str
    description: str
    url: str
    checksum: Checksum
    expected_size: int | None
    target: str
    archive: str | None = None
    member_prefix: str | None = None
    check_folder: Callable[[Path], str] | None = None

    def __post_init__(self) -> None:
        if self.archive is not None and (self.member_prefix is None or self.check_folder is None):
            raise ValueError(f"Dataset {self.name!r} is an archive: it needs `member_prefix` and `check_folder`.")


def _list_problem(name: str) -> str | None:
    """Why ``name`` (one list.txt entry, ``.mat`` removed) cannot name a mesh file in the folder, or None."""
    if not name:
        return "is an empty car name"
    if name in (".", ".."):
        return "names a folder, not a car"
    separators = [char for char in ("/", "\\", "\0") if char in name]
    if separators:
        return f"contains {separators[0]!r}: list.txt names files inside its own folder, not paths"
    return None


def read_cars_list(listing: str | os.PathLike[str]) -> tuple[str, ...]:
    """The car names of a Cars3D ``list.txt``, in order, each checked to name a file in the list's folder.

    The one check of ``list.txt`` behind both the environment (:func:`dyndis_envs.cars3d.read_object_list`)
    and ``dyndis-envs verify cars3d``. One name per line; surrounding whitespace and blank lines are ignored.
    The real list names the meshes without extension (``car_001_mesh``); an entry with the extension
    (``car_001_mesh.mat``) names the same file and gives the same name. The mesh of a name is
    :func:`cars_mesh_path`.

    Raises:
        FileNotFoundError: No file at ``listing``.
        IntegrityError: The file is not UTF-8 text, names no car, or a line holds an empty name (``.mat``),
            ``.`` or ``..``, a path separator (a slash or a backslash) or NUL, or a name an earlier line gave;
            the message names the line and its entry.
    """
    listing = Path(listing)
    try:
        text = listing.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise IntegrityError(f"{str(listing)!r} is not UTF-8 text ({error}): not a Cars3D list.txt.") from error
    names: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        name = entry[: -len(CARS3D_MESH_SUFFIX)] if entry.endswith(CARS3D_MESH_SUFFIX) else entry
        problem = _list_problem(name)
        if problem is None and name in first_line:
            problem = f"repeats the car {name!r} of line {first_line[name]}"
        if problem is not None:
            raise IntegrityError(f"{str(listing)!r} line {number}: {entry!r} {problem}.")
        first_line[name] = number
        names.append(name)
    if not names:
        raise IntegrityError(f"{str(listing)!r} names no car.")
    return tuple(names)


def cars_mesh_path(folder: str | os.PathLike[str], name: str) -> Path:
    """The mesh file of the car ``name`` (a name of :func:`read_cars_list`): ``folder / f"{name}.mat"``.

    Raises:
        ValueError: If ``name`` is not a plain file name (empty, ``.`` or ``..``, a path separator), so that
            no name reaches a file outside ``folder``.
    """
    problem = _list_problem(name) if isinstance(name, str) else "is not a string"
    if problem is not None:
        raise ValueError(f"Invalid Cars3D car name {name!r}: it {problem}.")
    return Path(folder) / f"{name}{CARS3D_MESH_SUFFIX}"


def _error_name(error: BaseException) -> str:
    """``zlib.error``, ``ValueError``: an exception's type as a reader recognises it."""
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def read_car_mesh(path: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
    """The ``im`` array of one Cars3D mesh file, checked: uint8 of shape :data:`CARS3D_MESH_SHAPE`.

    The one reader behind both the environment and ``dyndis-envs verify cars3d``.

    Raises:
        FileNotFoundError: No file at ``path``.
        IntegrityError: The file cannot be read as a MATLAB ``.mat`` file, whatever the reader's error
            (truncated, corrupt compressed data, not a .mat file at all: the message names the file and the
            cause), has no ``im``, or its ``im`` has another dtype or shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Cars3D file {str(path)!r} is missing (its name is in list.txt).")
    import scipy.io  # Lazy: scipy is slow to import.

    try:
        contents = scipy.io.loadmat(path, variable_names=["im"])
        found = None if "im" in contents else sorted(name for name, _, _ in scipy.io.whosmat(path))
    except MemoryError:
        raise
    except Exception as error:  # zlib.error, struct.error, ValueError, IndexError, ...: scipy's parser varies
        raise IntegrityError(
            f"Cars3D file {str(path)!r} is not a readable MATLAB .mat file ({_error_name(error)}: {error}); "
            "it may be truncated or corrupt: remove the cars folder and run `dyndis-envs download cars3d` to "
            "fetch it again."
        ) from error
    if found is not None:
        raise IntegrityError(f"Cars3D file {str(path)!r} has no variable 'im' (found {found}).")
    im = contents["im"]
    if im.dtype != np.uint8 or im.shape != CARS3D_MESH_SHAPE:
        raise IntegrityError(
            f"Cars3D file {str(path)!r}: 'im' must be uint8 of shape {CARS3D_MESH_SHAPE} (H, W, RGB, azimuth, "
            f"elevation), got {im.dtype} of shape {im.shape}."
        )
    return im


def check_cars_folder(folder: Path) -> str:
    """Check a Cars3D folder: ``list.txt``, every mesh it lists, and the array of the first mesh.

    ``list.txt`` is checked by :func:`read_cars_list` and the first mesh read by :func:`read_car_mesh`, as the
    environment does. Only the first mesh is loaded (each holds 4.7 MB of pixels); the others must exist and
    be non-empty.

    Returns:
        A one-line summary.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        IntegrityError: ``list.txt`` is missing or fails :func:`read_cars_list`, a listed mesh is missing or
            empty, or the first mesh fails :func:`read_car_mesh`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No Cars3D folder at {str(folder)!r}.")
    listing = folder / "list.txt"
    if not listing.is_file():
        raise IntegrityError(f"{str(folder)!r} has no list.txt: not a Cars3D folder.")
    names = read_cars_list(listing)
    meshes = [cars_mesh_path(folder, name) for name in names]
    broken = [mesh.name for mesh in meshes if not mesh.is_file() or mesh.stat().st_size == 0]
    if broken:
        shown = ", ".join(broken[:3]) + (", ..." if len(broken) > 3 else "")
        raise IntegrityError(
            f"{len(broken)} of the {len(names)} meshes listed in {str(listing)!r} are missing or empty: {shown}."
        )
    mesh = read_car_mesh(meshes[0])
    return f"{len(names)} meshes listed in list.txt, all present; {meshes[0].name} holds 'im' uint8 {mesh.shape}"


#: The known datasets by name.
DATASETS: dict[str, Dataset] = {
    "shapes3d": Dataset(
        name="shapes3d",
        description="DeepMind 3D Shapes: 480,000 images of 64x64x3 with 6 factors (for DynDis/Shapes3D-v0)",
        url="https://storage.googleapis.com/3d-shapes/3dshapes.h5",
        checksum=("sha256", "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"),
        expected_size=267_573_662,
        target="3dshapes.h5",
    ),
    "cars3d": Dataset(
        name="cars3d",
        description="Reed et al. 2015 car renderings: 183 cars x 24 azimuths x 4 elevations (for DynDis/Cars3D-v0)",
        url="http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
        checksum=("md5", "4e866a7919c1beedf53964e6f7a23686"),
        expected_size=None,
        target="cars",
        archive="nips2015-analogy-data.tar.gz",
        member_prefix="data/cars/",
        check_folder=check_cars_folder,
    ),
}


def get_dataset(name: str) -> Dataset:
    """The registered dataset called ``name``; ValueError naming the known ones otherwise."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}, expected one of {sorted(DATASETS)}.")
    return DATASETS[name]


def _root(data_dir: str | os.PathLike[str] | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else data_paths.data_dir()


def dataset_path(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the dataset lives: ``data_dir / target`` (``data_dir`` defaults to :func:`data_paths.data_dir`)."""
    return _root(data_dir) / get_dataset(name).target


def download_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    keep_archive: bool = False,
    progress: bool = True,
) -> Path:
    """Download, verify and (for an archive) extract a dataset; a dataset already in place is kept.

    Args:
        name: A key of :data:`DATASETS`.
        data_dir: The data directory; None for ``$DYNDIS_DATA`` or ``~/.cache/dyndis``.
        url: Another address of the same file (a mirror); None for the registered one.
        keep_archive: Keep the downloaded archive after extraction (archives only).
        progress: Show a progress bar.

    Returns:
        The dataset's path (``dataset_path(name, data_dir)``).

    Raises:
        IntegrityError: The download's checksum or size differs, or an existing or extracted folder fails
            its check.
        DownloadError: The download failed; a new call resumes it.
    """
    dataset = get_dataset(name)
    target = dataset_path(name, data_dir)
    source = url if url is not None else dataset.url
    check_folder, member_prefix = dataset.check_folder, dataset.member_prefix
    # __post_init__ makes these all None or all set; naming the three keeps type checkers informed.
    if dataset.archive is None or check_folder is None or member_prefix is None:
        return download(
            source, target, checksum=dataset.checksum, expected_size=dataset.expected_size, progress=progress
        )
    if target.exists():
        try:
            check_folder(target)
        except IntegrityError as error:
            raise IntegrityError(f"{error} Remove {str(target)!r} and download again.") from error
        return target
    archive = target.parent / dataset.archive
    download(source, archive, checksum=dataset.checksum, expected_size=dataset.expected_size, progress=progress)
    extract_tar(archive, target, member_prefix=member_prefix, check=check_folder)
    if not keep_archive:
        archive.unlink()
    return target


def _redownload_hint(dataset: Dataset, path: Path) -> str:
    """How to replace a bad copy of a downloaded file with a verified one."""
    download = f"dyndis-envs download {dataset.name}"
    if dataset.archive is None and path.name == dataset.target:
        # download() replaces a file that fails its check
        return f"`{download} --data-dir {str(path.parent)!r}` replaces it with a verified copy."
    return f"Delete it and run `{download}` to fetch a verified copy."


def verify_dataset_file(name: str, path: str | os.PathLike[str], *, cached: bool = False) -> str:
    """Check a downloaded file of a dataset against the registry: its size, then its digest.

    The one check behind ``dyndis-envs verify`` (``cached=False``: it always hashes) and the check that
    :class:`~dyndis_envs.shapes3d.Shapes3DEnv` runs on loading the real file (``cached=True``).

    Args:
        name: A key of :data:`DATASETS`.
        path: The file (for an archive dataset, the downloaded archive).
        cached: Reuse the digest recorded for this path, size and modification time, and record a computed
            one (:mod:`dyndis_envs._digest_cache`, in ``data_dir() / "cache"``), so a large file is hashed once.

    Returns:
        The file's hex digest (the expected one).

    Raises:
        FileNotFoundError: No file at ``path``.
        IntegrityError: The size or the digest differs; the message names the expected and actual values and
            how to download the file again.
    """
    dataset = get_dataset(name)
    algorithm, expected = dataset.checksum[0].lower(), dataset.checksum[1].lower()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file to verify at {str(path)!r}.")
    size = path.stat().st_size
    if dataset.expected_size is not None and size != dataset.expected_size:
        raise IntegrityError(
            f"Size mismatch for {str(path)!r}: expected {dataset.expected_size:,} bytes, got {size:,}. "
            + _redownload_hint(dataset, path)
        )
    actual = cached_file_digest(path, algorithm) if cached else file_digest(path, algorithm)
    if actual != expected:
        raise IntegrityError(
            f"Checksum mismatch for {str(path)!r}: expected {algorithm} {expected}, got {actual}. It is corrupt "
            f"or not the published {dataset.archive or dataset.target}. " + _redownload_hint(dataset, path)
        )
    return actual


def verify_dataset(name: str, path: str | os.PathLike[str] | None = None) -> str:
    """Check a dataset in place and describe it in one line.

    Args:
        name: A key of :data:`DATASETS`.
        path: The dataset file or folder; None for ``dataset_path(name)``. For an archive dataset, a file
            path is taken as the downloaded archive and its checksum is verified.

    Raises:
        FileNotFoundError: Nothing at ``path``.
        IntegrityError: The checksum, size or folder check fails.
    """
    dataset = get_dataset(name)
    path = Path(path).expanduser() if path is not None else dataset_path(name)
    if dataset.check_folder is None or path.is_file():
        digest = verify_dataset_file(name, path)
        return f"{dataset.checksum[0]} {digest}, {path.stat().st_size:,} bytes"
    return dataset.check_folder(path)
