"""Command line: ``dyndis-learn train | evaluate | report``.

Every :class:`~dyndis_learn.config.TrainConfig` field is a flag of ``train`` (``--model.latent-dim 6``,
``--warmup.kind spectral``, ``--threads 1``), documented in ``dyndis-learn train --help``; ``--config FILE``
reads fields from a JSON or YAML file first, and flags override them. The parser is built by tyro from the
config's dataclasses and their field docstrings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import tyro

from dyndis_learn import __version__
from dyndis_learn.api import Learner, load_config
from dyndis_learn.checkpoint import CHECKPOINT_NAME
from dyndis_learn.config import TrainConfig
from dyndis_learn.evaluate import Evaluation, format_summary
from dyndis_learn.files import write_json_atomic

__all__ = ["EvaluateArgs", "TrainArgs", "main"]

_DESCRIPTION = """\
Train, evaluate and report the spherical-latent rotation world model.

examples:
  dyndis-learn train --out runs/gridworld                           train, then write the report
  dyndis-learn train --out runs/shapes --env.id DynDis/Shapes3D-v0 --model.latent-dim 6
  dyndis-learn train --out runs/gridworld --resume --steps 1200     continue a run exactly
  dyndis-learn evaluate --run runs/gridworld                        print and save evaluation.json
  dyndis-learn report --run runs/gridworld                          PNGs, GIF, report.json and report.md
  dyndis-learn train --help                                         every config field, with its doc
"""


@dataclasses.dataclass
class TrainArgs:
    """Train a world model, then evaluate it and write its report into the run folder."""

    out: Path
    """Run folder: config.json, train_log.csv, checkpoint.safetensors and the report."""
    config: Path | None = None
    """A JSON or YAML file of TrainConfig fields (any subset, nested like --help's groups); flags override it."""
    resume: bool = False
    """Continue the run in --out from its checkpoint (only --steps may be given with it)."""
    report: bool = True
    """Evaluate and write the report at the end."""
    quiet: bool = False
    """No progress bar."""
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


#: Flags that may come with --resume (the rest of the configuration is the stored one).
_RESUME_FLAGS = {"--out", "--resume", "--steps", "--report", "--no-report", "--quiet", "--no-quiet"}


def _given_flags(args: Sequence[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}


def _train(args: list[str]) -> int:
    # The config file gives the defaults that the flags override: read it before the flags are parsed.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    config_file = pre.parse_known_args(args)[0].config
    defaults = load_config(config_file) if config_file is not None else TrainConfig()
    parsed = tyro.cli(
        TrainArgs, args=args, prog="dyndis-learn train", default=TrainArgs(out=tyro.MISSING, train=defaults)
    )
    checkpoint = parsed.out / CHECKPOINT_NAME
    given = _given_flags(args)
    if parsed.resume:
        if not checkpoint.is_file():
            raise ValueError(f"--resume: no checkpoint at {str(checkpoint)!r}.")
        ignored = sorted(given - _RESUME_FLAGS)
        if ignored:
            raise ValueError(f"--resume continues the stored configuration; drop {', '.join(ignored)}.")
        learner = Learner.load(checkpoint, run_dir=parsed.out)
    else:
        if checkpoint.exists():
            raise ValueError(
                f"{str(parsed.out)!r} already holds a run; pass --resume to continue it or pick another --out."
            )
        learner = Learner(parsed.train, run_dir=parsed.out)
    try:
        steps = parsed.train.steps if parsed.resume and "--steps" in given else None
        learner.train(steps, progress=not parsed.quiet)
        print(f"trained {learner.trainer.step} steps in {learner.trainer.train_seconds:.1f} s -> {parsed.out}")
        if parsed.report:
            path = learner.report()
            print(format_summary(Evaluation.from_dict(_read_json(path))))
            print(f"report: {path.parent / 'report.md'}")
    finally:
        learner.close()
    return 0


def _evaluate_or_report(command: str, args: list[str]) -> int:
    parsed = tyro.cli(EvaluateArgs, args=args, prog=f"dyndis-learn {command}")
    learner = Learner.load(parsed.run / CHECKPOINT_NAME)
    try:
        changes = {"episodes": parsed.episodes, "horizon": parsed.horizon}
        config = dataclasses.replace(learner.config.evaluation, **{k: v for k, v in changes.items() if v is not None})
        out = parsed.out or parsed.run
        if command == "evaluate":
            evaluation = learner.evaluate(config)
            write_json_atomic(out / "evaluation.json", evaluation.to_dict())
            print(format_summary(evaluation))
            print(f"saved {out / 'evaluation.json'}")
        else:
            path = learner.report(out, config)
            print(format_summary(Evaluation.from_dict(_read_json(path))))
            print(f"report: {path.parent / 'report.md'}")
    finally:
        learner.close()
    return 0


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dyndis-learn", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,report}")
    for name, text in (
        ("train", "train a world model (then write the report); see 'dyndis-learn train --help'"),
        ("evaluate", "evaluate a trained run and save evaluation.json"),
        ("report", "evaluate a trained run and write the report files"),
    ):
        commands.add_parser(name, help=text, add_help=False)  # each command's own parser (tyro) reads the rest
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dyndis-learn`` console script; returns the exit status."""
    namespace, rest = _parser().parse_known_args(argv)
    try:
        if namespace.command == "train":
            return _train(rest)
        return _evaluate_or_report(namespace.command, rest)
    except SystemExit as exc:  # tyro's usage errors (already printed) and --help
        return exc.code if isinstance(exc.code, int) else 2
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"dyndis-learn {namespace.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
