"""Command line: ``dyndis-learn train | evaluate | report``.

Examples::

    dyndis-learn train --env DynDis/GridWorld-v0 --out runs/gridworld      # trains, then writes the report
    dyndis-learn train --out runs/gridworld --resume --steps 1200          # continue a run
    dyndis-learn evaluate --run runs/gridworld                             # print and save the figures
    dyndis-learn report --run runs/gridworld                               # PNGs, GIF, report.json/md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dyndis_learn.api import Learner, load_config
from dyndis_learn.checkpoint import write_json_atomic
from dyndis_learn.config import EvalConfig, TrainConfig
from dyndis_learn.trainer import CHECKPOINT_NAME

__all__ = ["main"]


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"grid_shape\": [5, 5]}}', got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dyndis-learn", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a world model (then write the report)")
    train.add_argument("--out", type=Path, required=True, help="run folder (logs, checkpoint, report)")
    train.add_argument("--env", help="Gymnasium id (default DynDis/GridWorld-v0)")
    train.add_argument("--env-kwargs", type=_json_object, help="environment keyword arguments as a JSON object")
    train.add_argument("--latent-dim", type=int, help="latent dimension n (sphere S^(n-1))")
    train.add_argument("--steps", type=int, help="total SGD steps")
    train.add_argument("--seed", type=int, help="seed of weights, episodes and actions")
    train.add_argument("--config", type=Path, help="JSON file with TrainConfig fields (flags override it)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    train.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard")
    train.add_argument("--no-report", action="store_true", help="skip the evaluation and report at the end")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    for name, help_text in (
        ("evaluate", "evaluate a trained run and save evaluation.json"),
        ("report", "evaluate a trained run and write the report files"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--run", type=Path, required=True, help="run folder with checkpoint.safetensors")
        sub.add_argument("--out", type=Path, help="destination folder (default: the run folder)")
        sub.add_argument("--episodes", type=int, help="evaluation episodes")
        sub.add_argument("--horizon", type=int, help="rollout length k_max")
    return parser


def _train_config(args: argparse.Namespace) -> TrainConfig:
    data: dict[str, Any] = load_config(args.config).to_dict() if args.config else {}
    overrides = {"env_id": args.env, "env_kwargs": args.env_kwargs, "steps": args.steps, "seed": args.seed}
    data.update({k: v for k, v in overrides.items() if v is not None})
    if args.latent_dim is not None:
        data["model"] = {**data.get("model", {}), "latent_dim": args.latent_dim}
    if args.tensorboard:
        data["tensorboard"] = True
    return TrainConfig.from_dict(data)


def _train(args: argparse.Namespace) -> int:
    if args.resume:
        checkpoint = args.out / CHECKPOINT_NAME
        if not checkpoint.is_file():
            raise ValueError(f"--resume: no checkpoint at {str(checkpoint)!r}.")
        ignored = [
            flag
            for flag, value in (
                ("--env", args.env),
                ("--env-kwargs", args.env_kwargs),
                ("--latent-dim", args.latent_dim),
                ("--seed", args.seed),
                ("--config", args.config),
            )
            if value is not None
        ]
        if ignored:
            raise ValueError(f"--resume continues the stored configuration; drop {', '.join(ignored)}.")
        learner = Learner.load(checkpoint, run_dir=args.out)
    else:
        if (args.out / CHECKPOINT_NAME).exists():
            raise ValueError(
                f"{str(args.out)!r} already holds a run; pass --resume to continue it or pick another --out."
            )
        learner = Learner(_train_config(args), run_dir=args.out)
    try:
        learner.train(args.steps if args.resume else None, progress=not args.quiet)
        print(f"trained {learner.trainer.step} steps in {learner.trainer.train_seconds:.1f} s -> {args.out}")
        if not args.no_report:
            path = learner.report()
            _print_summary(json.loads(path.read_text()))
            print(f"report: {path.parent / 'report.md'}")
    finally:
        learner.close()
    return 0


def _evaluation_config(learner: Learner, args: argparse.Namespace) -> EvalConfig:
    changes = {k: v for k, v in (("episodes", args.episodes), ("horizon", args.horizon)) if v is not None}
    return dataclasses.replace(learner.config.evaluation, **changes)


def _print_summary(evaluation: dict[str, Any]) -> None:
    mean = dict(zip(evaluation["rollout_bce"]["k"], evaluation["rollout_bce"]["mean"], strict=True))
    horizon = evaluation["horizon"]
    print(f"rollout BCE k=1: {mean.get(1, float('nan')):.4f}  k={horizon}: {mean.get(horizon, float('nan')):.4f}")
    for a in evaluation["actions"]:
        what = f"{a['factor']}{'+' if a['direction'] > 0 else '-'}1" if "factor" in a else ""
        units = f"{a['angle_over_unit']:+.4f} x 2pi/{a['cycle_length']}" if "factor" in a else f"{a['angle']:+.4f} rad"
        print(
            f"action {a['action']} {what:>16}: plane {tuple(a['dominant_plane'])} "
            f"share {a['plane_share']:.4f} "
            f"angle {units}"
        )
    print(
        "criteria: "
        + ", ".join(
            f"{k}={v}"
            for k, v in evaluation["criteria"].items()
            if k in ("single_plane", "faithful_angles", "disjoint_planes", "rollout_stable", "all")
        )
    )


def _evaluate_or_report(args: argparse.Namespace) -> int:
    learner = Learner.load(args.run / CHECKPOINT_NAME)
    try:
        config = _evaluation_config(learner, args)
        out = args.out or args.run
        if args.command == "evaluate":
            evaluation = learner.evaluate(config)
            write_json_atomic(out / "evaluation.json", evaluation)
            _print_summary(evaluation)
            print(f"saved {out / 'evaluation.json'}")
        else:
            path = learner.report(out, config)
            _print_summary(json.loads(path.read_text()))
            print(f"report: {path.parent / 'report.md'}")
    finally:
        learner.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dyndis-learn`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        return _evaluate_or_report(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"dyndis-learn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
