"""Atomic file writes: a file on disk is either the old one or the complete new one, never half written.

:func:`atomic_write` writes a temporary file next to the destination and moves it into place with
``os.replace``. Two details:

- **Permissions.** The temporary file is created with ``os.open(..., 0o666)``, so the kernel applies the
  process's umask exactly as it does for ``open(path, "w")`` (``0o666 & ~umask``, e.g. ``-rw-r--r--``
  under the usual umask 022). ``tempfile.mkstemp`` would create it ``0o600``, and the renamed file would
  keep that. The umask is never read (``os.umask`` can only be read by setting it, process-wide, which
  would race with other threads).
- **Stale temporary files.** A process killed during a write (``kill -9``, a power cut) leaves its
  temporary file behind. Temporary names are ``.<name>.<host>-<pid>-<random><suffix>``, where ``<host>`` is
  a short hash of the machine's host name and ``<pid>`` the writer's process id. Before each write,
  :func:`remove_stale_temporaries` removes the temporary files *of that destination only* whose writer is
  known to be gone: written on this host by a process that no longer exists. A temporary file of a
  process that is alive (a concurrent writer) is never touched, nor is one from another host (a shared
  folder), unless it is older than :data:`STALE_AFTER_SECONDS` (an hour: no write takes that long), which
  is also how the ``mkstemp`` names of older versions (``.<name>.<8 random chars><suffix>``) are cleared.
  Should a live writer's file still be removed (a writer in another PID namespace on a host of the same
  name), that writer's ``os.replace`` fails loudly and the destination stays intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["STALE_AFTER_SECONDS", "atomic_write", "read_json_or_yaml", "remove_stale_temporaries", "write_json_atomic"]

#: Age (seconds since the last modification) after which any temporary file of a destination is stale,
#: whoever wrote it.
STALE_AFTER_SECONDS = 3600.0

_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
#: The part between ``.<name>.`` and the suffix: ``<host>-<pid>-<random>``, or an older ``mkstemp`` name.
_OURS = re.compile(r"(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-f]{8}")
_MKSTEMP = re.compile(r"[a-z0-9_]{8}")


def _temporary_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _process_exists(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True when it cannot be told)."""
    if os.name != "posix" or pid <= 0:
        return True  # os.kill(pid, 0) is no probe on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, under another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str], suffix: str = ".tmp") -> list[Path]:
    """Remove the temporary files that interrupted writes of ``path`` left behind (see the module docstring).

    Only names of the exact form ``.<name>.<middle><suffix>`` are considered, in ``path``'s folder. Errors
    (a missing folder, a file that vanished meanwhile) are ignored.

    Returns:
        The files removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) <= len(prefix) + len(suffix):
            continue
        middle = name[len(prefix) : len(name) - len(suffix)]
        ours = _OURS.fullmatch(middle)
        if ours is None and _MKSTEMP.fullmatch(middle) is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_SECONDS
            dead = (
                ours is not None
                and ours["host"] == _HOST
                and int(ours["pid"]) != os.getpid()
                and not _process_exists(int(ours["pid"]))
            )
            if old or dead:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _naming(exc: OSError, path: Path, tmp: Path) -> OSError:
    """``exc``, or the same error (same errno, so the same subclass) naming ``path`` instead of the temporary."""
    if exc.errno is None or (exc.filename is not None and str(exc.filename) != str(tmp)):
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any], suffix: str = ".tmp") -> Path:
    """Write ``path`` through a temporary file in the same folder, moved into place with ``os.replace``.

    The new file gets the permissions ``open(path, "w")`` would give it (``0o666`` less the umask), and the
    stale temporary files of earlier, interrupted writes of ``path`` are removed first (module docstring).

    Args:
        path: Destination file (its folder is created if needed).
        write: Called with the temporary file's name (the file exists, empty); writes the whole content there.
        suffix: Suffix of the temporary name (some writers pick the format from it, e.g. ``".png"``).

    Returns:
        ``path``. On any error the temporary file is removed and ``path`` is left as it was.

    Raises:
        OSError: As raised by the folder's creation or the write; one that named the temporary file (or
            no file) names ``path`` instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path, suffix)
    while True:
        tmp = _temporary_name(path, suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:  # another writer drew the same name
            continue
        except OSError as exc:
            raise _naming(exc, path, tmp) from exc
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            named = _naming(exc, path, tmp)
            if named is not exc:
                raise named from exc
        raise
    return path


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path``, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")

    return atomic_write(path, write)


def read_json_or_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """The data of a JSON or YAML file (``.yaml`` / ``.yml`` are read as YAML, all others as JSON).

    Args:
        path: The file.
        what: What the file is, for the messages (``"config file"``).

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If it is not valid JSON or YAML.
    """
    path = Path(path)
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text) if yaml_file else json.loads(text)
    except FileNotFoundError:
        raise FileNotFoundError(f"No {what} at {str(path)!r}.") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "YAML" if yaml_file else "JSON"
        raise ValueError(f"{what.capitalize()} {str(path)!r} is not valid {kind}: {exc}") from exc
