"""Safe extraction of tar archives: regular files and folders only, all inside the target folder.

Every member to extract is checked before anything is written: an absolute path, a path that leaves the
target folder (``..``), a symbolic or hard link, a device or a FIFO makes :func:`extract_tar` refuse the
whole archive. Where Python has tarfile's extraction filters (3.10.12+, 3.11.4+, 3.12+) the ``"data"``
filter runs as well, as a second line of defence; the checks here do not depend on it, so every Python
refuses the same archives. Extraction goes to a temporary folder beside the target, renamed into place
only when everything was extracted (and checked), so a failure never leaves a plausible-looking folder.
"""

from __future__ import annotations

import copy
import gzip
import os
import secrets
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["UnsafeArchiveError", "extract_tar"]

# Whether this Python's tarfile has extraction filters (PEP 706); module-level so tests can take either path.
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
# Caught as a refusal; an empty tuple (matches nothing) where tarfile has no filters.
_FILTER_ERRORS: tuple[type[Exception], ...] = (tarfile.FilterError,) if _HAS_DATA_FILTER else ()


class UnsafeArchiveError(ValueError):
    """A tar archive holds a member that could write outside its folder or is not a plain file or folder."""


def _prefix_parts(member_prefix: str | None) -> tuple[str, ...]:
    if member_prefix is None:
        return ()
    if not isinstance(member_prefix, str):
        raise TypeError(f"`member_prefix` must be a str or None, got {type(member_prefix).__name__}.")
    parts = PurePosixPath(member_prefix).parts
    if not parts or parts[0] == "/" or ".." in parts:
        raise ValueError(
            f"Invalid `member_prefix`, expected a relative folder inside the archive such as 'data/cars/', "
            f"got {member_prefix!r}."
        )
    return parts


def _refusal(archive: Path, member: tarfile.TarInfo, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"Refusing to extract {str(archive)!r}: member {member.name!r} {reason}.")


def _kind_problem(member: tarfile.TarInfo) -> str | None:
    """Why the member is not a plain file or folder, or None."""
    if member.issym():
        return f"is a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"is a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "is a device file"
    if member.isfifo():
        return "is a FIFO"
    if not (member.isreg() or member.isdir()):
        return f"is not a regular file or folder (tar type {member.type!r})"
    return None


def _safe_members(tar: tarfile.TarFile, archive: Path, prefix: tuple[str, ...]) -> list[tarfile.TarInfo]:
    """Copies of the members to extract, renamed relative to the target folder, after every check.

    Members outside ``prefix`` are skipped: they are never written, so they need no check.
    """
    selected = []
    for member in tar:
        # Both path flavours: a name like "C:\\x" or "..\\x" is harmless on POSIX but not on Windows.
        posix, windows = PurePosixPath(member.name), PureWindowsPath(member.name)
        parts = posix.parts  # An absolute name starts with "/", so it never matches a (relative) prefix.
        if prefix:
            if parts[: len(prefix)] != prefix:
                continue
            parts = parts[len(prefix) :]
        if posix.is_absolute() or windows.drive or windows.root:
            raise _refusal(archive, member, "has an absolute path")
        if ".." in parts or ".." in windows.parts:
            raise _refusal(archive, member, "escapes the target folder ('..')")
        problem = _kind_problem(member)
        if problem is not None:
            raise _refusal(archive, member, problem)
        if not parts:  # The prefix folder itself (or "."): it becomes the target folder.
            continue
        safe = copy.copy(member)
        safe.name = "/".join(parts)
        # Plain permissions: drop setuid/setgid/sticky and group/world write; keep the owner's execute bit.
        safe.mode = 0o755 if member.isdir() or member.mode & 0o100 else 0o644
        selected.append(safe)
    return selected


def extract_tar(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    member_prefix: str | None = None,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Extract a (possibly compressed) tar archive into ``dest``, refusing anything unsafe.

    Args:
        archive: The ``.tar``, ``.tar.gz``, ``.tar.bz2`` or ``.tar.xz`` file.
        dest: The folder to create. It must not exist, or be an empty folder.
        member_prefix: Extract only the members under this folder of the archive (e.g. ``"data/cars/"``),
            with the prefix removed, so ``data/cars/list.txt`` becomes ``dest/list.txt``. A leading ``./``
            in member names is ignored. None extracts everything.
        check: Called with the extracted (temporary) folder before it is moved to ``dest``; an exception
            aborts the extraction and propagates.

    Returns:
        ``dest`` as a Path.

    Raises:
        UnsafeArchiveError: A member to extract has an absolute path or one with ``..``, or is a symbolic
            link, a hard link, a device or a FIFO. Nothing is left at ``dest``.
        FileExistsError: ``dest`` exists and is not an empty folder.
        ValueError: The archive is not a readable tar archive, or nothing in it is under ``member_prefix``.
    """
    archive, dest = Path(archive), Path(dest)
    prefix = _prefix_parts(member_prefix)
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise FileExistsError(f"Cannot extract {str(archive)!r} to {str(dest)!r}: it exists; remove it first.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.extracting"
    staging.mkdir()  # Not mkdtemp: its 0o700 mode would stay on the renamed folder.
    try:
        try:
            with tarfile.open(archive) as tar:
                members = _safe_members(tar, archive, prefix)
                if prefix and not members:
                    raise ValueError(f"{str(archive)!r} has no members under {member_prefix!r}.")
                if _HAS_DATA_FILTER:
                    tar.extractall(staging, members=members, filter="data")
                else:
                    tar.extractall(staging, members=members)
        except _FILTER_ERRORS as error:  # Our checks run first, so this is a second line of defence.
            raise UnsafeArchiveError(f"Refusing to extract {str(archive)!r}: {error}.") from error
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise ValueError(f"{str(archive)!r} is not a readable tar archive: {error}.") from error
        if check is not None:
            check(staging)
        if dest.exists():
            dest.rmdir()  # Empty (checked above); rename(2) onto a folder is not portable.
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest
