"""Resumable, verified HTTP(S) downloads with the standard library.

:func:`download` writes to ``<dest>.part`` and hashes the bytes as they arrive. A partial file left by an
interrupted run is re-hashed and continued with an HTTP ``Range`` request; a server that ignores ``Range``
(status 200 instead of 206) makes the download start over; a body that runs past the expected size is not
read further. Only a file whose size and digest match is moved to ``dest`` (with :func:`os.replace`, so
``dest`` is either absent or complete); a mismatch deletes the partial file, since its bytes cannot be
trusted for a later resume.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dyndis_envs.validation import check_choice, check_int, check_number

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DIGEST_LENGTHS",
    "Checksum",
    "DownloadError",
    "IntegrityError",
    "download",
    "file_digest",
    "part_path",
    "verify_file",
]

#: ``(algorithm, hex digest)``, e.g. ``("sha256", "0a0f...")``.
Checksum = tuple[str, str]
#: Supported hash algorithms and the length of their hex digests.
DIGEST_LENGTHS: dict[str, int] = {"sha256": 64, "md5": 32}
#: Bytes read per network or disk read.
DEFAULT_CHUNK_SIZE = 1 << 20

_USER_AGENT = "dyndis-envs (urllib)"
# HTTP statuses worth another try; any other (404, 403, ...) will not change by waiting.
_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)\s*$")


class IntegrityError(ValueError):
    """A file's size or digest is not the expected one."""


class DownloadError(OSError):
    """A download failed after its retries, or for a reason that retrying cannot fix.

    The partial file is kept, so calling :func:`download` again resumes it.
    """


class _Interrupted(ConnectionError):
    """The server closed the connection before the whole body arrived."""


def part_path(dest: str | os.PathLike[str]) -> Path:
    """Where :func:`download` keeps the bytes of ``dest`` until they are verified: ``<dest>.part``."""
    dest = Path(dest)
    return dest.with_suffix(dest.suffix + ".part")


def _checked_checksum(checksum: Any) -> Checksum:
    if (
        not isinstance(checksum, (tuple, list))
        or len(checksum) != 2
        or not all(isinstance(item, str) for item in checksum)
    ):
        raise TypeError(f"`checksum` must be a pair (algorithm, hex digest) of strings, got {checksum!r}.")
    algorithm, digest = checksum[0].lower(), checksum[1].lower()
    if algorithm not in DIGEST_LENGTHS:
        raise ValueError(f"Invalid `checksum` algorithm, expected one of {tuple(DIGEST_LENGTHS)}, got {checksum[0]!r}.")
    length = DIGEST_LENGTHS[algorithm]
    if len(digest) != length or any(char not in "0123456789abcdef" for char in digest):
        raise ValueError(
            f"Invalid `checksum` digest: a {algorithm} digest is {length} hex digits, got {checksum[1]!r}."
        )
    return algorithm, digest


def _hash_file(path: Path, algorithm: str, chunk_size: int) -> tuple[Any, int]:
    """The hash object of the file's bytes and their count."""
    hasher = hashlib.new(algorithm)
    size = 0
    with path.open("rb") as file:
        while block := file.read(chunk_size):
            hasher.update(block)
            size += len(block)
    return hasher, size


def file_digest(path: str | os.PathLike[str], algorithm: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> str:
    """The hex digest of a file, read in chunks (constant memory).

    Args:
        path: The file.
        algorithm: ``"sha256"`` or ``"md5"``.
        chunk_size: Bytes per read.
    """
    algorithm = check_choice("algorithm", algorithm, tuple(DIGEST_LENGTHS))
    return _hash_file(Path(path), algorithm, chunk_size)[0].hexdigest()


def _mismatch(subject: str, algorithm: str, expected: str, actual: str) -> str:
    return f"Checksum mismatch for {subject}: expected {algorithm} {expected}, got {actual}."


def verify_file(path: str | os.PathLike[str], checksum: Checksum, expected_size: int | None = None) -> str:
    """Check a file's size (when given) and digest.

    Args:
        path: The file.
        checksum: ``("sha256", hex)`` or ``("md5", hex)``.
        expected_size: The file's size in bytes, or None to skip the size check.

    Returns:
        The file's hex digest (the expected one).

    Raises:
        FileNotFoundError: No file at ``path``.
        IntegrityError: The size or digest differs.
    """
    algorithm, expected = _checked_checksum(checksum)
    expected_size = check_int("expected_size", expected_size, minimum=0, optional=True)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file to verify at {str(path)!r}.")
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise IntegrityError(f"Size mismatch for {str(path)!r}: expected {expected_size:,} bytes, got {size:,}.")
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise IntegrityError(_mismatch(repr(str(path)), algorithm, expected, actual))
    return actual


class _PartialFile:
    """The ``.part`` file of a download with the running hash and count of its bytes."""

    def __init__(self, path: Path, algorithm: str, chunk_size: int) -> None:
        self.path = path
        self.algorithm = algorithm
        # Resuming continues the hash, so the bytes already on disk are hashed first.
        if path.is_file():
            self.hasher, self.size = _hash_file(path, algorithm, chunk_size)
        else:
            self.hasher, self.size = hashlib.new(algorithm), 0

    def restart(self) -> None:
        """Forget the bytes so far (truncate the file)."""
        self.path.write_bytes(b"")
        self.hasher, self.size = hashlib.new(self.algorithm), 0

    def delete(self) -> None:
        """Remove the file (its bytes are wrong)."""
        self.path.unlink(missing_ok=True)
        self.hasher, self.size = hashlib.new(self.algorithm), 0


def _kept(path: Path) -> str | None:
    """What a failed download leaves to resume: the partial file with its real size, or None if there is none."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return f"{size:,} bytes are kept in {str(path)!r}; run again to resume."


def _request(url: str, offset: int) -> urllib.request.Request:
    # identity: a transparently compressed body would make offsets and sizes meaningless.
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.Request(url, headers=headers)


def _open(url: str, partial: _PartialFile, timeout: float) -> tuple[http.client.HTTPResponse | None, int | None]:
    """Open the request that continues ``partial``.

    Returns:
        The response positioned at ``partial.size`` (None when the partial file is already whole) and the
        remote file's size when the server tells it.
    """
    resuming = partial.size > 0
    try:
        response = urllib.request.urlopen(_request(url, partial.size), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not resuming:
            raise
        error.close()
        # Range Not Satisfiable: the partial file is as long as the remote file, or longer (stale).
        match = _UNSATISFIED_RANGE.match(error.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == partial.size:
            return None, partial.size
        partial.restart()
        return _open(url, partial, timeout)
    if response.status == 206 and resuming:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == partial.size:
            total = match.group(3)
            return response, None if total == "*" else int(total)
        # A range other than the one asked for: start over rather than guess.
        response.close()
        partial.restart()
        return _open(url, partial, timeout)
    if response.status == 200:
        if resuming:  # The server ignored the Range header and sends the whole file: start over.
            partial.restart()
        length = response.headers.get("Content-Length")
        return response, int(length) if length is not None and length.isdigit() else None
    response.close()
    raise DownloadError(f"Unexpected HTTP status {response.status} from {url}.")


def _fetch(
    url: str,
    partial: _PartialFile,
    expected_size: int | None,
    timeout: float,
    chunk_size: int,
    bar: _Progress,
) -> None:
    """Append the rest of the remote file to ``partial``; raises a retryable error if cut short."""
    response, total = _open(url, partial, timeout)
    if total is not None and expected_size is not None and total != expected_size:
        if response is not None:
            response.close()
        partial.delete()
        raise IntegrityError(f"Size mismatch for {url}: expected {expected_size:,} bytes, the server has {total:,}.")
    bar.start(total if total is not None else expected_size, partial.size)
    if response is None:
        return
    with response, partial.path.open("ab") as out:
        while chunk := response.read(chunk_size):
            out.write(chunk)
            partial.hasher.update(chunk)
            partial.size += len(chunk)
            bar.update(len(chunk))
            if expected_size is not None and partial.size > expected_size:
                break  # Already too long (a server that sent no length): reading on cannot make it right.
    # http.client returns a short body without raising when the connection drops, so count the bytes.
    if total is not None and partial.size < total:
        raise _Interrupted(f"the connection closed after {partial.size:,} of {total:,} bytes")


# Failures of the connection or the server; each is retried except an HTTP status that waiting cannot fix.
_TRANSFER_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class _Progress:
    """A tqdm bar (on stderr) that appears with the first response, so a failed request prints no bar."""

    def __init__(self, enabled: bool, description: str) -> None:
        self._enabled = enabled
        self._description = description
        self._bar: tqdm | None = None

    def start(self, total: int | None, position: int) -> None:
        """Show the transfer of a response: ``position`` bytes of ``total`` (None: unknown) are on disk."""
        if not self._enabled:
            return
        if self._bar is None:
            from tqdm import tqdm  # Lazy: importing the CLI should stay light.

            self._bar = tqdm(
                desc=self._description,
                total=total,
                initial=position,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                dynamic_ncols=True,
            )
        else:  # A resumed or restarted response.
            self._bar.total, self._bar.n = total, position
            self._bar.refresh()

    def update(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    checksum: Checksum,
    expected_size: int | None = None,
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial download, and verify it before moving it into place.

    A ``dest`` that already has the expected size and digest is kept and nothing is downloaded; any other
    ``dest`` is replaced by the verified download.

    Args:
        url: An ``http://`` or ``https://`` URL.
        dest: The final file. Its folder is created if needed.
        checksum: ``("sha256", hex)`` or ``("md5", hex)`` of the whole file.
        expected_size: The file's size in bytes, or None when unknown.
        progress: Show a tqdm progress bar (on stderr).
        chunk_size: Bytes per read.
        timeout: Seconds to wait for the connection and for each read.
        retries: How many attempts in a row that bring no new bytes are retried after a connection error, a
            timeout or a 408/429/5xx status. An attempt that brings new bytes resets the count (and is
            followed by another), so a connection that keeps dropping still finishes.
        backoff: Seconds before a retry; doubled for each further attempt in a row without progress.

    Returns:
        ``dest`` as a Path.

    Raises:
        IntegrityError: The size or digest of the download differs (the partial file is deleted).
        DownloadError: The server failed past the retries or refused the file (the partial file is kept,
            so a new call resumes it; the message gives its real size, or says that none was written).
    """
    algorithm, expected = _checked_checksum(checksum)
    expected_size = check_int("expected_size", expected_size, minimum=0, optional=True)
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"Invalid `url`, expected an http:// or https:// URL, got {url!r}.")
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    timeout = check_number("timeout", timeout, minimum=0, exclusive_minimum=True)
    retries = check_int("retries", retries, minimum=0)
    backoff = check_number("backoff", backoff, minimum=0)

    dest = Path(dest)
    if dest.is_file():
        try:
            verify_file(dest, (algorithm, expected), expected_size)
            return dest
        except IntegrityError:
            pass  # Replaced below by a verified download.
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = _PartialFile(part_path(dest), algorithm, chunk_size)
    if expected_size is not None and partial.size > expected_size:
        partial.restart()

    failures = 0
    bar = _Progress(progress, dest.name)
    try:
        while expected_size is None or partial.size != expected_size:
            before = partial.size
            try:
                _fetch(url, partial, expected_size, timeout, chunk_size, bar)
                if expected_size is not None and partial.size < expected_size:
                    # The server sent no length and stopped early: a dropped connection.
                    raise _Interrupted(f"the body ended after {partial.size:,} of {expected_size:,} bytes")
                break
            except _TRANSFER_ERRORS as error:
                if isinstance(error, urllib.error.HTTPError):
                    error.close()
                    if error.code not in _RETRYABLE_STATUSES:
                        kept = _kept(partial.path)
                        raise DownloadError(
                            f"Downloading {url} failed: {error}." + (f" {kept}" if kept else "")
                        ) from error
                failures = 0 if partial.size > before else failures + 1
                if failures > retries:
                    raise DownloadError(
                        f"Downloading {url} failed after {failures} attempt(s) without progress: {error}. "
                        f"{_kept(partial.path) or 'No partial file was written; run again to retry.'}"
                    ) from error
                time.sleep(backoff * 2 ** max(failures - 1, 0))
    finally:
        bar.close()

    if expected_size is not None and partial.size != expected_size:
        received = partial.size  # More than expected: the loop above ends short only by raising.
        partial.delete()
        raise IntegrityError(
            f"Size mismatch for {url}: expected {expected_size:,} bytes, received {received:,} (reading stopped "
            f"once the body ran past the expected size); the partial file was deleted."
        )
    actual = partial.hasher.hexdigest()
    if actual != expected:
        partial.delete()
        raise IntegrityError(
            _mismatch(url, algorithm, expected, actual) + f" The partial file {str(partial.path)!r} was deleted."
        )
    with partial.path.open("ab") as file:  # Durable bytes before the rename publishes them ("ab": 0 bytes too).
        os.fsync(file.fileno())
    os.replace(partial.path, dest)
    return dest
