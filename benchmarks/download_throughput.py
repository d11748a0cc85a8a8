"""Download and verification throughput: MB/s of `download` from a loopback server and of `verify_file`.

Usage: python -m benchmarks.download_throughput [--quick] [--size-mb 64]
The loopback server takes the network out of the figure: what is left is the cost of urllib, hashing and
writing, i.e. the floor under any real download. The last column is that cost for 3dshapes.h5 (267.6 MB).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from benchmarks._common import print_table, rate, write_json
from dyndis_envs.download import download, verify_file

SHAPES3D_MB = 267_573_662 / 1e6


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small file and short timings (smoke run)")
    parser.add_argument("--size-mb", type=int, default=64, help="size of the served file in MB")
    args = parser.parse_args()
    size_mb = 4 if args.quick else args.size_mb
    seconds = 0.2 if args.quick else 3.0

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "served.bin"
        data = np.random.default_rng(0).integers(0, 256, size_mb * 10**6, dtype=np.uint8).tobytes()
        source.write_bytes(data)
        checksums = {name: (name, hashlib.new(name, data).hexdigest()) for name in ("sha256", "md5")}
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/served.bin"
            dest = Path(folder) / "downloaded.bin"

            def fetch(algorithm: str, chunk_size: int) -> None:
                dest.unlink(missing_ok=True)  # A verified dest would be kept without a download.
                download(url, dest, checksum=checksums[algorithm], progress=False, chunk_size=chunk_size)

            cases = {
                "download sha256, 64 KiB reads": lambda: fetch("sha256", 1 << 16),
                "download sha256, 1 MiB reads (default)": lambda: fetch("sha256", 1 << 20),
                "download md5, 1 MiB reads (default)": lambda: fetch("md5", 1 << 20),
                "verify_file sha256": lambda: verify_file(source, checksums["sha256"]),
                "verify_file md5": lambda: verify_file(source, checksums["md5"]),
            }
            results = {name: rate(fn, size_mb, seconds) for name, fn in cases.items()}
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    rows = [[name, mb_per_s, SHAPES3D_MB / mb_per_s] for name, mb_per_s in results.items()]
    print_table(["operation", "MB/s", "s for 3dshapes.h5"], rows)
    path = write_json("download_throughput", {"file_mb": size_mb, "mb_per_s": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
