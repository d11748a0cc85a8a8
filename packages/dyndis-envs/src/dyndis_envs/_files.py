"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Write ``path`` all at once: the block writes a temporary file in the same folder, then it replaces ``path``.

    The temporary file (``.<name>.<random>.tmp``, created with the usual permissions) is renamed onto
    ``path`` with :func:`os.replace` when the block ends normally, so ``path`` is either its old self or
    complete. If the block raises, the temporary file is deleted and ``path`` is left as it was.

    Args:
        path: The file to write; its folder must exist.

    Yields:
        The temporary file, open for writing in binary mode.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_write(target) as file:
        ...     _ = file.write(b"done")
        >>> target.read_bytes()
        b'done'
    """
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            file = tmp.open("xb")  # not mkstemp: its 0o600 mode would stay on the renamed file
            break
        except FileExistsError:  # another writer drew the same name
            continue
    try:
        with file:
            yield file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
