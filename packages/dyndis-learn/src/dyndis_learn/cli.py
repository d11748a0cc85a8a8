"""Command line: ``dyndis-learn train | evaluate | report | sweep``.

Every :class:`~dyndis_learn.config.TrainConfig` field is a flag of ``train`` (``--model.latent-dim 6``,
``--warmup.kind spectral``, ``--threads 1``), documented in ``dyndis-learn train --help``; ``--config FILE``
reads fields from a JSON or YAML file first, and flags override them. The parser is built by tyro from the
config's dataclasses and their field docstrings. ``sweep`` takes the same config flags as the base of a grid
of runs (:mod:`dyndis_learn.sweep`).

``train`` trains data-parallel when torchrun starts it (``torchrun --nproc-per-node N -m dyndis_learn train
...``); ``--nproc N`` starts those ``N`` processes itself (:mod:`dyndis_learn.distributed`). Only rank 0
prints and writes the report.

Errors are one line on standard error, ``dyndis-learn <command>: error: ...``, naming the path and the cause
where a file is involved; the exit status says what kind (:data:`EXIT_STATUSES`): 0 success, 1 a runtime
failure (a file that cannot be written or read, a corrupted or inconsistent checkpoint, memory exhausted),
2 a usage error (a bad flag or value, a missing file, an ``--out`` that is a file, a limit of this machine
exceeded, ``--steps`` below a resumed run's step, a bad grid, Ray asked for and not installed). A sweep in
which some run failed exits with 1 once the other runs are done.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import tyro

from dyndis_learn import __version__, distributed
from dyndis_learn.api import Learner, load_config
from dyndis_learn.checkpoint import CHECKPOINT_NAME, CheckpointError
from dyndis_learn.config import TrainConfig
from dyndis_learn.files import write_json_atomic
from dyndis_learn.remedies import remedy_lines
from dyndis_learn.results import Evaluation, format_summary
from dyndis_learn.sweep import ProcessExecutor, RayExecutor, Sweep, load_grid_file, parse_grid

__all__ = ["EXIT_STATUSES", "EvaluateArgs", "SweepArgs", "TrainArgs", "main"]

#: The exit statuses of ``dyndis-learn``.
EXIT_STATUSES = {
    0: "success",
    1: "runtime failure: a file that cannot be written or read (permission, no space left, ...), a corrupted "
    "or inconsistent checkpoint, memory exhausted, a run of a sweep that failed",
    2: "usage error: a bad flag or value, a missing run or config file, an --out that is a file, a limit of "
    "this machine exceeded (threads, evaluation memory), --steps below a resumed run's step, a bad sweep grid, "
    "Ray asked for and not installed",
}

_DESCRIPTION = """\
Train, evaluate and report the spherical-latent rotation world model.

examples:
  dyndis-learn train --out runs/gridworld                           train, then write the report
  dyndis-learn train --out runs/cars --env.id DynDis/Cars3D-v0      its budget chosen from the world
  dyndis-learn train --out runs/gridworld --resume --steps 1200     continue a run exactly
  dyndis-learn train --out runs/ddp --nproc 2 --threads 1           data-parallel on 2 processes
  dyndis-learn evaluate --run runs/gridworld                        print and save evaluation.json
  dyndis-learn report --run runs/gridworld                          PNGs, GIF, report.json and report.md
  dyndis-learn sweep --out sweeps/seeds --grid seed=0,1,2 --grid model.method=rotation,quessard2020
  dyndis-learn train --help                                         every config field, with its doc
"""

_EPILOG = "exit status:\n" + "\n".join(
    textwrap.fill(text, 100, initial_indent=f"  {code}  ", subsequent_indent="     ")
    for code, text in EXIT_STATUSES.items()
)


@dataclasses.dataclass
class TrainArgs:
    """Train a world model, then evaluate it and write its report into the run folder."""

    out: Path
    """Run folder: config.json, train_log.csv, checkpoint.safetensors and the report."""
    config: Path | None = None
    """A JSON or YAML file of TrainConfig fields (any subset, nested like --help's groups); flags override it."""
    resume: bool = False
    """Continue the run in --out from its checkpoint (only --steps, --device and --nproc may be given with it)."""
    report: bool = True
    """Evaluate and write the report at the end."""
    quiet: bool = False
    """No progress bar."""
    nproc: int = 1
    """Train data-parallel in this many processes on this machine, started through torchrun's launcher (gloo
    on the CPU, NCCL on GPUs; each process uses --threads threads); 1 trains in this process. Leave it out
    under torchrun, which starts the processes itself."""
    train: Annotated[TrainConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=TrainConfig)


@dataclasses.dataclass
class EvaluateArgs:
    """Evaluate a trained run: rollout error and group structure on fresh episodes."""

    run: Path
    """Run folder holding checkpoint.safetensors."""
    out: Path | None = None
    """Destination folder (default: the run folder)."""
    episodes: int | None = None
    """Evaluation episodes (default: the run's evaluation.episodes)."""
    horizon: int | None = None
    """Rollout length k_max (default: the run's evaluation.horizon)."""
    synthesis_modes: int | Literal["auto"] | None = None
    """Encodings judged: 1 the encoder's own, more (or auto) an angle-bin model's decoder-checked ones
    (default: the run's evaluation.synthesis_modes)."""


#: Flags that may come with --resume (the rest of the configuration is the stored one).
_RESUME_FLAGS = {
    "--out", "--resume", "--steps", "--device", "--report", "--no-report", "--quiet", "--no-quiet", "--nproc"
}


#: The precision flag's values; given bare (``--bf16``, as before ``"auto"`` existed) it means ``--bf16 True``.
_BF16_VALUES = ("True", "False", "auto")


def _bare_bf16(args: Sequence[str]) -> list[str]:
    """``args`` with each bare ``--bf16`` (no value after it) given its value, ``True``."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--bf16" and (i + 1 == len(args) or args[i + 1] not in _BF16_VALUES):
            out.append("True")
    return out


def _given_flags(args: Sequence[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}


def _check_folder(flag: str, path: Path) -> None:
    """Refuse (as a usage error) a folder argument that is a file or lies under one."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return
        if candidate.exists() or candidate.is_symlink():
            where = "is a file" if candidate == path else f"lies under {str(candidate)!r}, which is a file"
            raise ValueError(f"{flag} {str(path)!r} {where}, not a folder.")


def _train(args: list[str]) -> int:
    args = _bare_bf16(args)
    # The config file gives the defaults that the flags override: read it before the flags are parsed.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    config_file = pre.parse_known_args(args)[0].config
    defaults = load_config(config_file) if config_file is not None else TrainConfig()
    parsed = tyro.cli(
        TrainArgs, args=args, prog="dyndis-learn train", default=TrainArgs(out=tyro.MISSING, train=defaults)
    )
    _check_folder("--out", parsed.out)
    checkpoint = parsed.out / CHECKPOINT_NAME
    given = _given_flags(args)
    if parsed.resume:
        if not checkpoint.is_file():
            raise ValueError(f"--resume: no checkpoint at {str(checkpoint)!r}.")
        ignored = sorted(given - _RESUME_FLAGS)
        if ignored:
            raise ValueError(f"--resume continues the stored configuration; drop {', '.join(ignored)}.")
    elif checkpoint.exists():
        raise ValueError(
            f"{str(parsed.out)!r} already holds a run; pass --resume to continue it or pick another --out."
        )
    if parsed.nproc < 1:
        raise ValueError(f"--nproc must be an integer >= 1, got {parsed.nproc}.")
    if parsed.nproc > 1:
        if distributed.launched():
            raise ValueError(
                "--nproc starts its own processes, but this one was started by torchrun among several: leave "
                "--nproc out (torchrun's --nproc-per-node sets the number)."
            )
        return distributed.launch(parsed.nproc, ["train", *_without_nproc(args)])
    with distributed.process_group() as ranks:  # joined only under torchrun with several processes
        return _run_training(parsed, given, ranks.is_main)


def _run_training(parsed: TrainArgs, given: set[str], main: bool) -> int:
    """Train the run that ``parsed`` describes (in this process, or as one data-parallel rank), then report."""
    if parsed.resume:
        device = parsed.train.device if "--device" in given else None  # e.g. a GPU run continued on the CPU
        learner = Learner.load(parsed.out / CHECKPOINT_NAME, run_dir=parsed.out, device=device)
    else:
        learner = Learner(parsed.train, run_dir=parsed.out)
    try:
        asked = parsed.train.steps if parsed.resume and "--steps" in given else "auto"
        steps = None if asked == "auto" else asked  # None: the run's own (stored, resolved) steps
        learner.train(steps, progress=not parsed.quiet)
        if not main:  # rank 0 prints and writes the report
            return 0
        print(f"trained {learner.trainer.step} steps in {learner.trainer.train_seconds:.1f} s -> {parsed.out}")
        if parsed.report:
            path = learner.report()
            _print_summary(Evaluation.from_dict(_read_json(path)))
            print(f"report: {path.parent / 'report.md'}")
    except OSError as exc:
        _locate(exc, parsed.out)
        raise
    finally:
        learner.close()
    return 0


@dataclasses.dataclass
class SweepArgs:
    """Train a grid of runs (seeds, methods, any config field) on Ray or in local processes; rerun to resume."""

    out: Path
    """Sweep folder: a run folder per grid point, sweep.json, summary.csv, summary.json and summary.md."""
    grid: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """An axis of the grid, FIELD=V1,V2,... (repeat the flag for more axes), e.g. seed=0,1,2 or
    model.method=rotation,quessard2020 or env.kwargs.image_size=32,64; values are JSON, else text."""
    grid_file: Path | None = None
    """A JSON or YAML file mapping fields to lists of values, e.g. {"seed": [0, 1, 2]}; adds to --grid."""
    config: Path | None = None
    """A JSON or YAML file of TrainConfig fields, the base of every run; flags override it."""
    jobs: int | None = None
    """Run on this machine without Ray, N runs at a time in local processes (without --jobs: Ray tasks)."""
    address: str | None = None
    """Ray cluster to connect to (HOST:6379, ray://HOST:10001, auto, local); default: $RAY_ADDRESS, else
    one started on this machine with 'ray start', else a new local Ray instance."""
    cpus_per_run: float | None = None
    """CPUs Ray reserves for each run (default: the run's --threads, 1 for 0)."""
    gpus_per_run: float = 0.0
    """GPUs Ray reserves for each run (fractions share a GPU); give it with --device auto or cuda."""
    dry_run: bool = False
    """List the runs and what each needs (start, resume, finished), then exit."""
    train: Annotated[TrainConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=TrainConfig)


def _sweep(args: list[str]) -> int:
    args = _bare_bf16(args)
    pre = argparse.ArgumentParser(add_help=False)  # the config file gives the defaults the flags override
    pre.add_argument("--config", type=Path)
    config_file = pre.parse_known_args(args)[0].config
    defaults = load_config(config_file) if config_file is not None else TrainConfig()
    parsed = tyro.cli(
        SweepArgs, args=args, prog="dyndis-learn sweep", default=SweepArgs(out=tyro.MISSING, train=defaults)
    )
    _check_folder("--out", parsed.out)
    axes = parse_grid(parsed.grid)
    if parsed.grid_file is not None:
        for key, values in load_grid_file(parsed.grid_file).items():
            if key in axes:
                raise ValueError(f"--grid {key} is given both on the command line and in --grid-file.")
            axes[key] = values
    sweep = Sweep.from_grid(parsed.out, parsed.train, axes)
    if parsed.dry_run:
        for run in sweep.runs:
            print(f"{sweep.state(run):8s} {sweep.run_dir(run)}")
        return 0
    if parsed.jobs is not None:
        ray_flags = [flag for flag in ("--address", "--cpus-per-run", "--gpus-per-run") if flag in _given_flags(args)]
        if ray_flags:
            given = ", ".join(ray_flags)
            raise ValueError(f"{given}: Ray settings, but --jobs runs without Ray; drop one or the other.")
        executor: ProcessExecutor | RayExecutor = ProcessExecutor(parsed.jobs)
    else:
        executor = RayExecutor(parsed.address, parsed.cpus_per_run, parsed.gpus_per_run)
    rows = sweep.run(executor)
    return 1 if any(row["status"] == "failed" for row in rows) else 0


def _without_nproc(args: Sequence[str]) -> list[str]:
    """``args`` less ``--nproc N`` / ``--nproc=N`` (the processes it starts must not start more)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _locate(exc: OSError, folder: Path) -> None:
    """Name ``folder`` in an OSError that names no file (e.g. a full disk met by a plain ``write``)."""
    if exc.filename is None:
        exc.filename = str(folder)


def _evaluate_or_report(command: str, args: list[str]) -> int:
    parsed = tyro.cli(EvaluateArgs, args=args, prog=f"dyndis-learn {command}")
    out = parsed.out or parsed.run
    _check_folder("--run", parsed.run)
    _check_folder("--out", out)
    learner = Learner.load(parsed.run / CHECKPOINT_NAME)
    try:
        changes = {"episodes": parsed.episodes, "horizon": parsed.horizon, "synthesis_modes": parsed.synthesis_modes}
        config = dataclasses.replace(learner.config.evaluation, **{k: v for k, v in changes.items() if v is not None})
        if command == "evaluate":
            evaluation = learner.evaluate(config)
            write_json_atomic(out / "evaluation.json", evaluation.to_dict())
            _print_summary(evaluation)
            print(f"saved {out / 'evaluation.json'}")
        else:
            path = learner.report(out, config)
            _print_summary(Evaluation.from_dict(_read_json(path)))
            print(f"report: {path.parent / 'report.md'}")
    except OSError as exc:
        _locate(exc, out)
        raise
    finally:
        learner.close()
    return 0


def _print_summary(evaluation: Evaluation) -> None:
    """Print the evaluation's summary, then what to change for each criterion that failed."""
    print("\n".join([format_summary(evaluation), *remedy_lines(evaluation)]))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dyndis-learn",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,report,sweep}")
    for name, text in (
        ("train", "train a world model (then write the report); see 'dyndis-learn train --help'"),
        ("evaluate", "evaluate a trained run and save evaluation.json"),
        ("report", "evaluate a trained run and write the report files"),
        ("sweep", "train a grid of runs on Ray or local processes; see 'dyndis-learn sweep --help'"),
    ):
        commands.add_parser(name, help=text, add_help=False)  # each command's own parser (tyro) reads the rest
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dyndis-learn`` console script; returns the exit status (:data:`EXIT_STATUSES`)."""
    namespace, rest = _parser().parse_known_args(argv)
    command = namespace.command
    try:
        if command == "train":
            return _train(rest)
        if command == "sweep":
            return _sweep(rest)
        return _evaluate_or_report(command, rest)
    except SystemExit as exc:  # tyro's usage errors (already printed) and --help
        return exc.code if isinstance(exc.code, int) else 2
    except CheckpointError as exc:  # a ValueError, but the file is at fault, not the command line
        return _fail(command, str(exc), 1)
    except ImportError as exc:  # an optional extra asked for (Ray) and not installed; the message names it
        return _fail(command, str(exc), 2)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and exc.errno is None:  # our own "No checkpoint/config file at"
            return _fail(command, str(exc), 2)
        return _fail(command, _os_error(exc), 1)
    except (ValueError, TypeError) as exc:
        return _fail(command, str(exc), 2)
    except MemoryError as exc:
        return _fail(command, f"out of memory ({exc or 'an allocation failed'}); lower the sizes asked for.", 1)


def _fail(command: str, message: str, status: int) -> int:
    """Print ``message`` as one error line; returns ``status``."""
    print(f"dyndis-learn {command}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def _os_error(exc: OSError) -> str:
    """``'path': cause [ERRNO]`` (both paths of a rename) for an OSError."""
    cause = exc.strerror or str(exc)
    if exc.errno in errno.errorcode:
        cause += f" [{errno.errorcode[exc.errno]}]"
    if exc.filename is None:
        return cause
    where = repr(str(exc.filename))
    if exc.filename2 is not None:
        where += f" -> {str(exc.filename2)!r}"
    return f"{where}: {cause}"


if __name__ == "__main__":
    sys.exit(main())
