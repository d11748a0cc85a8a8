"""A local HTTP file server for download tests: 127.0.0.1 only, with Range support and misbehaving modes."""

from __future__ import annotations

import random
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up on purpose (size mismatch, timeout tests) is not a server failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalFileServer:
    """Serves in-memory files on 127.0.0.1 in a thread; use as a context manager (stops the server).

    Attributes (change them between requests to change the behaviour):
        files: URL path -> bytes.
        ignore_range: Answer every request with 200 and the whole file, as servers without Range support do.
        drop_after: Send at most this many body bytes per response, then close the connection (the
            headers still announce the full length): a connection dropped mid-file.
        omit_length: Send no Content-Length (the body ends when the connection closes).
        error_statuses: Statuses to answer the next requests with, one each, before serving normally again.
        requests: (path, Range header or None) of every request, in order.
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.ignore_range = False
        self.drop_after: int | None = None
        self.omit_length = False
        self.error_statuses: list[int] = []
        self.requests: list[tuple[str, str | None]] = []
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> LocalFileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(state: LocalFileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: the connection closes after each response, so a short body reads as a dropped connection.
        protocol_version = "HTTP/1.0"

        def log_message(self, format, *args):
            pass

        def do_GET(self):
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            if state.error_statuses:
                self.send_error(state.error_statuses.pop(0))
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if range_header is not None and not state.ignore_range:
                match = re.fullmatch(r"bytes=(\d+)-", range_header)  # The only form the client sends.
                if match is None:
                    self.send_error(400, f"unsupported Range {range_header!r}")
                    return
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            if not state.omit_length:
                self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            chunk = body[start:] if state.drop_after is None else body[start : start + state.drop_after]
            self.wfile.write(chunk)

    return Handler
