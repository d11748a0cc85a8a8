"""The ``dyndis-envs`` command: download, verify and list the real datasets, and list the environment ids.

Examples::

    dyndis-envs download shapes3d                 # into $DYNDIS_DATA or ~/.cache/dyndis
    dyndis-envs download cars3d --data-dir /data --keep-archive
    dyndis-envs verify shapes3d                   # checksum of data_dir()/3dshapes.h5
    dyndis-envs list
    dyndis-envs info                              # every registered id: plain, Reach and Goal
    dyndis-envs --version

Exit status: 0 on success, 1 when a download or a check fails, 2 for a usage error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dyndis_envs import __version__, data_paths
from dyndis_envs.datasets import DATASETS, dataset_path, download_dataset, get_dataset, verify_dataset
from dyndis_envs.download import part_path

__all__ = ["main"]

_PROG = "dyndis-envs"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Download and check the datasets of the DynDis environments; list their ids."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_dir_help = "the data directory (default: $DYNDIS_DATA or ~/.cache/dyndis)"
    names = sorted(DATASETS)

    fetch = commands.add_parser("download", help="download, verify and install a dataset (resumable)")
    fetch.add_argument("dataset", choices=names)
    fetch.add_argument("--data-dir", metavar="DIR", help=data_dir_help)
    fetch.add_argument("--url", help="download from this address instead (a mirror of the same file)")
    fetch.add_argument("--keep-archive", action="store_true", help="keep the archive after extraction")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")

    verify = commands.add_parser("verify", help="check a dataset's checksum (file) or contents (folder)")
    verify.add_argument("dataset", choices=names)
    verify.add_argument("path", nargs="?", help="the dataset file or folder (default: its place in the data dir)")
    verify.add_argument("--data-dir", metavar="DIR", help=data_dir_help)

    listing = commands.add_parser("list", help="the known datasets, whether they are present, and where")
    listing.add_argument("--data-dir", metavar="DIR", help=data_dir_help)

    commands.add_parser("info", help="the registered environment ids (plain, Reach and Goal)")
    return parser


def _download(args: argparse.Namespace) -> int:
    path = download_dataset(
        args.dataset,
        data_dir=args.data_dir,
        url=args.url,
        keep_archive=args.keep_archive,
        progress=not args.no_progress,
    )
    print(f"{args.dataset}: ready at {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    path = args.path if args.path is not None else dataset_path(args.dataset, args.data_dir)
    summary = verify_dataset(args.dataset, path)
    print(f"{args.dataset}: OK ({summary}) at {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = []
    for name in sorted(DATASETS):
        path = dataset_path(name, args.data_dir)
        dataset = get_dataset(name)
        partial = part_path(path.parent / (dataset.archive or dataset.target))
        status = "present" if path.exists() else ("partial" if partial.exists() else "missing")
        rows.append((name, status, str(path), dataset.description))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for name, status, path, description in rows:
        print(f"{name:<{widths[0]}}  {status:<{widths[1]}}  {path}\n{'':<{widths[0]}}  {description}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import dyndis_envs

    print(f"dyndis-envs {dyndis_envs.__version__}; data directory: {data_paths.data_dir()}")
    for env_id in dyndis_envs.ENV_IDS + dyndis_envs.TASK_IDS:
        spec = gym.spec(env_id)
        details = [f"entry point {spec.entry_point}"]
        if "env" in spec.kwargs:
            details.append(f"on {spec.kwargs['env']}")
        if spec.vector_entry_point is not None:
            details.append("native vector env")
        details.append(f"max_episode_steps={spec.max_episode_steps}")
        print(f"{env_id}  ({', '.join(details)})")
    return 0


_COMMANDS = {"download": _download, "verify": _verify, "list": _list, "info": _info}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dyndis-envs`` command.

    Args:
        argv: The arguments without the program name; None for ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 on failure, 2 for a usage error, 130 when interrupted.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse exits on --help (0) and on usage errors (2).
        return exit_request.code if isinstance(exit_request.code, int) else 2
    try:
        return _COMMANDS[args.command](args)
    except (OSError, ValueError) as error:
        print(f"{_PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted; run the same command again to resume a download.", file=sys.stderr)
        return 130
