import hashlib
import re
import socket

import pytest

from dyndis_envs.download import DownloadError, IntegrityError, download, file_digest, part_path, verify_file
from tests.envs._http_server import LocalFileServer, payload

SIZE = 10_000
DATA = payload(SIZE)
SHA256 = ("sha256", hashlib.sha256(DATA).hexdigest())
MD5 = ("md5", hashlib.md5(DATA).hexdigest())
# Quick failure in tests: no waiting between retries, short timeouts.
FAST = {"progress": False, "backoff": 0.0, "timeout": 5.0, "chunk_size": 1024}


@pytest.fixture
def server():
    with LocalFileServer({"/file.bin": DATA}) as running:
        yield running


@pytest.mark.parametrize("checksum", [SHA256, MD5], ids=["sha256", "md5"])
def test_download__fresh__writes_verified_file(server, tmp_path, checksum):
    dest = tmp_path / "sub" / "file.bin"
    result = download(server.url("/file.bin"), dest, checksum=checksum, expected_size=SIZE, **FAST)
    assert result == dest
    assert dest.read_bytes() == DATA
    assert not part_path(dest).exists()
    assert server.requests == [("/file.bin", None)]


def test_download__existing_partial_file__resumes_with_range(server, tmp_path):
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(DATA[:4000])
    download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=SIZE, **FAST)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/file.bin", "bytes=4000-")]


def test_download__server_ignores_range__restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    dest = tmp_path / "file.bin"
    # Stale bytes that a naive append would keep: a clean restart must discard them.
    part_path(dest).write_bytes(b"\0" * 4000)
    download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=SIZE, **FAST)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/file.bin", "bytes=4000-")]


def test_download__connection_dropped_mid_file__resumes_to_the_right_bytes(server, tmp_path):
    server.drop_after = 3000
    dest = tmp_path / "file.bin"
    download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=SIZE, retries=1, **FAST)
    assert dest.read_bytes() == DATA
    assert [header for _, header in server.requests] == [None, "bytes=3000-", "bytes=6000-", "bytes=9000-"]


def test_download__dropped_without_size_or_length__resumes_from_expected_size(server, tmp_path):
    server.drop_after, server.omit_length = 6000, True
    dest = tmp_path / "file.bin"
    download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=SIZE, retries=1, **FAST)
    assert dest.read_bytes() == DATA
    assert [header for _, header in server.requests] == [None, "bytes=6000-"]


def test_download__failed_run__keeps_partial_file_and_next_run_resumes(server, tmp_path):
    server.ignore_range, server.drop_after = True, 3000  # The second attempt brings no new bytes: give up.
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match=re.escape("3,000 bytes are kept in")):
        download(server.url("/file.bin"), dest, checksum=SHA256, retries=0, **FAST)
    assert not dest.exists()
    assert part_path(dest).read_bytes() == DATA[:3000]

    server.ignore_range, server.drop_after = False, None
    download(server.url("/file.bin"), dest, checksum=SHA256, **FAST)
    assert dest.read_bytes() == DATA
    assert server.requests[-1] == ("/file.bin", "bytes=3000-")


def test_download__server_keeps_dropping_at_the_same_byte__gives_up_after_retries(server, tmp_path):
    server.ignore_range, server.drop_after = True, 3000  # Every attempt restarts and stops at byte 3000.
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match=re.escape("failed after 3 attempt(s) without progress")):
        download(server.url("/file.bin"), dest, checksum=SHA256, retries=2, **FAST)
    assert len(server.requests) == 4  # The first attempt made progress; then 3 in a row without.
    assert not dest.exists()


def test_download__checksum_mismatch__deletes_partial_file_and_names_digests(server, tmp_path):
    dest = tmp_path / "file.bin"
    wrong = "0" * 64
    message = f"Checksum mismatch for {server.url('/file.bin')}: expected sha256 {wrong}, got {SHA256[1]}."
    with pytest.raises(IntegrityError, match=re.escape(message)):
        download(server.url("/file.bin"), dest, checksum=("sha256", wrong), **FAST)
    assert list(tmp_path.iterdir()) == []


def test_download__corrupt_partial_file__mismatch_deletes_it_and_a_rerun_succeeds(server, tmp_path):
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(b"\xff" * 4000)
    corrupt = hashlib.sha256(b"\xff" * 4000 + DATA[4000:]).hexdigest()
    with pytest.raises(IntegrityError, match=re.escape(f"expected sha256 {SHA256[1]}, got {corrupt}")):
        download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=SIZE, **FAST)
    assert list(tmp_path.iterdir()) == []
    download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=SIZE, **FAST)
    assert dest.read_bytes() == DATA


def test_download__server_size_differs_from_expected__refuses_before_downloading(server, tmp_path):
    dest = tmp_path / "file.bin"
    message = f"Size mismatch for {server.url('/file.bin')}: expected 12,345 bytes, the server has 10,000."
    with pytest.raises(IntegrityError, match=re.escape(message)):
        download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=12_345, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_download__complete_partial_file_and_unknown_size__416_then_verified(server, tmp_path):
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(DATA)
    download(server.url("/file.bin"), dest, checksum=SHA256, **FAST)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/file.bin", f"bytes={SIZE}-")]


def test_download__partial_file_longer_than_remote__restarts(server, tmp_path):
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(DATA + b"stale tail")
    download(server.url("/file.bin"), dest, checksum=SHA256, **FAST)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/file.bin", f"bytes={SIZE + 10}-"), ("/file.bin", None)]


def test_download__valid_destination__kept_without_a_request(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(DATA)
    download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=SIZE, **FAST)
    assert server.requests == []


def test_download__invalid_destination__replaced_by_verified_download(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"not the file")
    download(server.url("/file.bin"), dest, checksum=SHA256, **FAST)
    assert dest.read_bytes() == DATA


def test_download__http_404__fails_without_retrying(server, tmp_path):
    with pytest.raises(DownloadError, match=re.escape("HTTP Error 404")):
        download(server.url("/missing.bin"), tmp_path / "x", checksum=SHA256, retries=3, **FAST)
    assert len(server.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_download__temporary_server_errors__retried(server, tmp_path):
    server.error_statuses = [503, 429]
    dest = tmp_path / "file.bin"
    download(server.url("/file.bin"), dest, checksum=SHA256, retries=2, **FAST)
    assert dest.read_bytes() == DATA
    assert len(server.requests) == 3


def test_download__empty_file__written(server, tmp_path):
    server.files["/empty.bin"] = b""
    empty = ("sha256", hashlib.sha256(b"").hexdigest())
    for expected_size in (None, 0):
        dest = tmp_path / f"empty_{expected_size}.bin"
        download(server.url("/empty.bin"), dest, checksum=empty, expected_size=expected_size, **FAST)
        assert dest.read_bytes() == b""


def test_download__connection_refused__retries_then_fails(tmp_path):
    with socket.socket() as probe:  # A loopback port that nothing listens on once the probe closes.
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match=re.escape("failed after 3 attempt(s) without progress")):
        download(f"http://127.0.0.1:{port}/file.bin", tmp_path / "x", checksum=SHA256, retries=2, **FAST)


def test_download__server_never_answers__times_out(tmp_path):
    with socket.socket() as silent:  # Accepts connections (backlog) but never responds.
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/file.bin"
        with pytest.raises(DownloadError, match=re.escape("failed after 1 attempt(s) without progress")):
            download(url, tmp_path / "x", checksum=SHA256, retries=0, progress=False, timeout=0.3)


def test_download__progress_bar__does_not_change_the_result(server, tmp_path, capsys):
    dest = tmp_path / "file.bin"
    download(server.url("/file.bin"), dest, checksum=SHA256, expected_size=SIZE, progress=True)
    assert dest.read_bytes() == DATA
    assert "file.bin" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"checksum": ("sha1", "0" * 40)},
            ValueError,
            "Invalid `checksum` algorithm, expected one of ('sha256', 'md5'), got 'sha1'.",
        ),
        (
            {"checksum": ("md5", "xyz")},
            ValueError,
            "Invalid `checksum` digest: a md5 digest is 32 hex digits, got 'xyz'.",
        ),
        ({"checksum": "abc"}, TypeError, "`checksum` must be a pair (algorithm, hex digest) of strings, got 'abc'."),
        (
            {"url": "ftp://example.org/x"},
            ValueError,
            "Invalid `url`, expected an http:// or https:// URL, got 'ftp://example.org/x'.",
        ),
        ({"expected_size": -1}, ValueError, "`expected_size` must be an integer >= 0 or None, got -1."),
        ({"chunk_size": 0}, ValueError, "`chunk_size` must be an integer >= 1, got 0."),
        ({"timeout": 0}, ValueError, "`timeout` must be a number > 0, got 0."),
        ({"retries": 1.5}, ValueError, "`retries` must be an integer >= 0, got 1.5."),
    ],
)
def test_download__bad_arguments__raise_naming_the_argument(tmp_path, kwargs, error, message):
    arguments = {"url": "http://127.0.0.1:9/x", "checksum": SHA256, **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        download(arguments.pop("url"), tmp_path / "x", progress=False, **arguments)
    assert list(tmp_path.iterdir()) == []


def test_verify_file__matching_file__returns_digest(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(DATA)
    assert verify_file(path, SHA256, SIZE) == SHA256[1]
    assert verify_file(path, ("MD5", MD5[1].upper())) == MD5[1]
    assert file_digest(path, "md5") == MD5[1]


def test_verify_file__wrong_digest_size_or_missing_file__raises(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(DATA[:-1])
    actual = hashlib.sha256(DATA[:-1]).hexdigest()
    with pytest.raises(IntegrityError, match=re.escape(f"expected sha256 {SHA256[1]}, got {actual}.")):
        verify_file(path, SHA256)
    with pytest.raises(IntegrityError, match=re.escape("expected 10,000 bytes, got 9,999.")):
        verify_file(path, SHA256, SIZE)
    with pytest.raises(FileNotFoundError, match=re.escape("No file to verify at")):
        verify_file(tmp_path / "missing.bin", SHA256)


@pytest.mark.parametrize(("extra", "received"), [(100, 10_100), (5_000, 10_240)])
def test_download__body_longer_than_expected__reports_the_bytes_received(server, tmp_path, extra, received):
    """Replay: a body past the expected size was reported as "got 0" (the count was read after the delete)."""
    server.files["/long.bin"], server.omit_length = DATA + payload(extra, seed=1), True
    dest = tmp_path / "file.bin"
    message = (
        f"Size mismatch for {server.url('/long.bin')}: expected 10,000 bytes, received {received:,} (reading stopped "
        "once the body ran past the expected size); the partial file was deleted."
    )
    with pytest.raises(IntegrityError, match=re.escape(message)):
        download(server.url("/long.bin"), dest, checksum=SHA256, expected_size=SIZE, **FAST)  # 1 KiB reads
    assert list(tmp_path.iterdir()) == []


def test_download__server_errors_before_any_byte__no_partial_file_is_claimed(server, tmp_path):
    """Replay: an HTTP 503 said "0 bytes are kept in '...part'" when no .part existed."""
    server.error_statuses = [503, 503]
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError) as caught:
        download(server.url("/file.bin"), dest, checksum=SHA256, retries=1, **FAST)
    assert str(caught.value) == (
        f"Downloading {server.url('/file.bin')} failed after 2 attempt(s) without progress: HTTP Error 503: "
        "Service Unavailable. No partial file was written; run again to retry."
    )
    assert list(tmp_path.iterdir()) == []


def test_download__server_errors_on_resume__the_real_size_of_the_kept_partial_file(server, tmp_path):
    server.error_statuses = [503]
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(DATA[:4000])
    message = f"HTTP Error 503: Service Unavailable. 4,000 bytes are kept in {str(part_path(dest))!r}; run again"
    with pytest.raises(DownloadError, match=re.escape(message)):
        download(server.url("/file.bin"), dest, checksum=SHA256, retries=0, **FAST)
    assert part_path(dest).read_bytes() == DATA[:4000]


def test_download__refused_file__mentions_a_partial_file_only_when_one_exists(server, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError) as caught:
        download(server.url("/missing.bin"), dest, checksum=SHA256, **FAST)
    assert str(caught.value) == f"Downloading {server.url('/missing.bin')} failed: HTTP Error 404: Not Found."
    part_path(dest).write_bytes(DATA[:10])
    kept = f"HTTP Error 404: Not Found. 10 bytes are kept in {str(part_path(dest))!r}; run again to resume."
    with pytest.raises(DownloadError, match=re.escape(kept)):
        download(server.url("/missing.bin"), dest, checksum=SHA256, **FAST)
