"""Where real dataset files live, and the choice between them and procedural rendering.

The data directory is ``$DYNDIS_DATA`` when set, else ``~/.cache/dyndis``. Environments with a real
dataset take ``backend="procedural" | "file" | "auto"`` and an optional ``data_path``:

* ``"procedural"``: render; no file is read.
* ``"file"``: read ``data_path`` (or the default location in the data directory); a missing file is an error.
* ``"auto"``: the file if it is found, else procedural. ``env.unwrapped.backend`` says which was used.
"""

from __future__ import annotations

import os
from pathlib import Path

from dyndis_envs.validation import check_choice

__all__ = ["BACKENDS", "data_dir", "resolve_backend"]

BACKENDS = ("procedural", "file", "auto")


def data_dir() -> Path:
    """The folder that holds downloaded datasets: ``$DYNDIS_DATA`` or ``~/.cache/dyndis``."""
    env = os.environ.get("DYNDIS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dyndis"


def resolve_backend(
    backend: str, data_path: str | os.PathLike[str] | None, default_name: str
) -> tuple[str, Path | None]:
    """Decide between the procedural and the file source.

    Args:
        backend: ``"procedural"``, ``"file"`` or ``"auto"``.
        data_path: The user's path to the dataset, or None for ``data_dir() / default_name``.
        default_name: The dataset's file or folder name inside the data directory (e.g. ``"3dshapes.h5"``).

    Returns:
        ``("procedural", None)`` or ``("file", path)``.

    Raises:
        ValueError: For an unknown backend.
        FileNotFoundError: For ``backend="file"`` when the dataset is not there.
    """
    backend = check_choice("backend", backend, BACKENDS)
    if backend == "procedural":
        return "procedural", None
    path = Path(data_path).expanduser() if data_path is not None else data_dir() / default_name
    if path.exists():
        return "file", path
    if backend == "auto":
        return "procedural", None
    raise FileNotFoundError(
        f"backend='file' but the dataset was not found at {str(path)!r}: pass `data_path`, set $DYNDIS_DATA, "
        f"run `dyndis-envs download`, or use backend='procedural'."
    )
