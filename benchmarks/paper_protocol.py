"""The Fig. 6 protocol of Quessard et al. (2020), every method on three worlds, many seeds.

For each world, method and seed: train the method's recipe, then evaluate it with the library's own
evaluation (``evaluate_model``: rollout BCE of the model's own k-step predictions from fresh episodes, the
structure criteria, encoder probe, decoder fidelity) and the report's metrics (``report_metrics``: D_LSBD,
MIG/DCI on angle coordinates). Per method and world: rollout BCE at k = 1, 100, 500 (mean and 95% t interval
over seeds), D_LSBD, probe R^2 (mean over factors), MIG and DCI disentanglement on angles, the share of runs
whose actions are single-plane, the share of actions at a faithful angle, and wall time. The paper's numbers
for its ball world are printed beside ours. Writes ``benchmarks/results/paper_protocol.json``, a markdown
table (``paper_protocol.md`` there) and a figure of the rollout BCE against k with 95% bands.

Worlds: ``ballworld`` (``DynDis/BallWorld-v0`` from the centre, the paper's), ``shapes3d`` (floor_hue, wall_hue,
orientation: 1,500 states), ``cars3d`` (one car, elevation x azimuth 4 x 24). Recipes: ``rotation`` and
``rotation-unregularised`` the default ``TrainConfig`` (graph warm-up); ``quessard2020`` the paper's published
settings (``QUESSARD2020_CONFIG``); ``direct``, ``forward-vae``, ``lsbd-vae`` the default config without a
warm-up. Latent 4 on the ball world and Cars3D, 6 on Shapes3D. ``--steps`` replaces every recipe's step
budget; under it the rotation recipe's warm-up takes at most a third of the steps and its dynamics ramp at
most a sixth (so the dynamics phase is trained to its end).

Usage: python -m benchmarks.paper_protocol [--seeds 20] [--methods ...] [--worlds ...] [--steps N] [--jobs 1]
       [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import RESULTS, SHAPES3D_SUBSET, write_json
from dyndis_learn import EvalConfig, TrainConfig, Trainer
from dyndis_learn.config import DEFAULT_WARMUP_STEPS
from dyndis_learn.evaluate import evaluate_model
from dyndis_learn.methods import QUESSARD2020_CONFIG
from dyndis_learn.report import report_metrics

WORLDS: dict[str, dict[str, Any]] = {
    "ballworld": {"env": {"id": "DynDis/BallWorld-v0", "kwargs": {"start": [2, 2]}}, "latent_dim": 4},
    "shapes3d": {
        "env": {
            "id": "DynDis/Shapes3D-v0",
            "kwargs": {"factors": SHAPES3D_SUBSET},
        },
        "latent_dim": 6,
    },
    "cars3d": {
        "env": {"id": "DynDis/Cars3D-v0", "kwargs": {"factors": {"elevation": "all", "azimuth": "all", "object": [0]}}},
        "latent_dim": 4,
    },
}
METHODS = ("rotation", "rotation-unregularised", "quessard2020", "direct", "forward-vae", "lsbd-vae")
#: The default methods: ``rotation-unregularised`` under the default recipe equals ``rotation`` (the graph
#: warm-up's fitted angles are kept, ``optim.angle_lr`` 0, so the regulariser moves nothing).
DEFAULT_METHODS = ("rotation", "quessard2020", "direct", "forward-vae", "lsbd-vae")
KS = (1, 100, 500)
#: Quessard et al. (2020), Fig. 6, on their ball world (20 seeds).
PAPER = {
    ("ballworld", "quessard2020"): {"1": 0.024, "100": 0.089, "500": 1.144, "single_plane": "19/20"},
    ("ballworld", "direct"): {"100": 1.229},
}


def recipe(method: str, world: dict[str, Any], seed: int, args: argparse.Namespace) -> TrainConfig:
    """The method's training config on ``world``."""
    base: dict[str, Any] = {"env": world["env"], "seed": seed, "threads": args.threads}
    model = {"method": method, "latent_dim": world["latent_dim"]}
    if method == "quessard2020":
        paper = {k: v for k, v in QUESSARD2020_CONFIG.items() if k not in ("env", "model")}
        config = {**base, **paper, "model": {**QUESSARD2020_CONFIG["model"], **model}}
    elif method in ("rotation", "rotation-unregularised"):
        config = {**base, "model": model}
    else:
        config = {**base, "model": model, "warmup": {"kind": "none"}}
    config["logging"] = {"log_every": 50, "checkpoint_every": 0}
    if args.steps:
        config["steps"] = args.steps
        if method in ("rotation", "rotation-unregularised"):  # the warm-up and ramp fit in a short budget
            defaults = TrainConfig()
            config["warmup"] = {"steps": min(DEFAULT_WARMUP_STEPS, args.steps // 3)}
            config["optim"] = {"dynamics_ramp_steps": min(defaults.optim.dynamics_ramp_steps, args.steps // 6)}
    return TrainConfig.from_dict(config)


def run(job: tuple[str, str, int, argparse.Namespace]) -> dict[str, Any]:
    """Train and evaluate one (world, method, seed)."""
    world_name, method, seed, args = job
    torch.set_num_threads(args.threads)
    world = WORLDS[world_name]
    config = recipe(method, world, seed, args)
    started = time.perf_counter()
    trainer = Trainer(config)
    trainer.train(progress=False)
    trained = time.perf_counter()
    evaluation_config = EvalConfig(episodes=args.episodes, horizon=KS[-1])
    env = config.env
    ks = sorted({*KS, *range(10, KS[-1] + 1, 10)})  # k >= 1: every model predicts these
    evaluation = evaluate_model(trainer.model, env.id, env.kwargs, evaluation_config, ks=ks, history=trainer.history)
    metrics = report_metrics(trainer.model, evaluation, seed=evaluation_config.seed)
    trainer.close()
    criteria = evaluation.criteria
    faithful = [a.faithful for a in evaluation.actions if a.faithful is not None]
    result = {
        "world": world_name,
        "method": method,
        "seed": seed,
        "steps": trainer.step,
        "train_seconds": trainer.train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "eval_seconds": time.perf_counter() - trained,
        "k": list(evaluation.rollout_bce.k),
        "bce": list(evaluation.rollout_bce.mean),
        "bce_at": {str(k): evaluation.rollout_bce.mean_at(k) for k in KS},
        "single_plane": criteria.single_plane,
        "faithful_rate": float(np.mean(faithful)) if faithful else None,
        "criteria": {**criteria.checks(), "all": criteria.all},
        "not_applicable": list(criteria.not_applicable),
        "probe_r2": None if evaluation.fidelity is None else list(evaluation.fidelity.probe_r2),
        "d_lsbd": None if metrics is None else metrics["d_lsbd"]["value"],
        "mig_angles": None if metrics is None else metrics["angles"]["mig"]["value"],
        "dci_angles": None if metrics is None else metrics["angles"]["dci"]["disentanglement"],
    }
    print(
        f"{world_name:9s} {method:22s} seed {seed:2d}: BCE k=1 {result['bce_at']['1']:.4f} k=500 "
        f"{result['bce_at']['500']:.4f}  D_LSBD {result['d_lsbd']:.3f}  {result['wall_seconds']:.0f} s",
        flush=True,
    )
    return result


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval); half-width NaN for fewer than two values."""
    from scipy import stats

    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(array) == 0:
        return math.nan, math.nan
    if len(array) < 2:
        return float(array.mean()), math.nan
    half = stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array))
    return float(array.mean()), float(half)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-method figures over its seeds."""
    summary: dict[str, Any] = {"seeds": len(runs)}
    for k in KS:
        summary[f"bce_{k}"] = interval([r["bce_at"][str(k)] for r in runs])
    for key in ("d_lsbd", "mig_angles", "dci_angles", "wall_seconds"):
        summary[key] = interval([r[key] for r in runs])
    summary["probe_r2"] = interval([float(np.mean(r["probe_r2"])) for r in runs if r["probe_r2"]])
    planes = [r["single_plane"] for r in runs if r["single_plane"] is not None]
    summary["single_plane"] = f"{sum(planes)}/{len(planes)}" if planes else "n/a"
    rates = [r["faithful_rate"] for r in runs if r["faithful_rate"] is not None]
    summary["faithful_rate"] = float(np.mean(rates)) if rates else None
    return summary


def _plain(value: Any) -> Any:
    """``value`` with NaN floats as None (strict JSON), tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _cell(pair: tuple[float, float], digits: int = 3) -> str:
    mean, half = pair
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def table(summaries: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The markdown table, the paper's numbers beside ours."""
    lines = [
        "| world | method | seeds | BCE k=1 | BCE k=100 | BCE k=500 | D_LSBD | probe R^2 | MIG (angles) | "
        "DCI dis. (angles) | single plane | faithful | wall s | paper k=1 / 100 / 500 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for world, methods in summaries.items():
        for method, s in methods.items():
            paper = PAPER.get((world, method), {})
            reference = " / ".join(str(paper.get(str(k), "-")) for k in KS) if paper else ""
            if "single_plane" in paper:
                reference += f"; single plane {paper['single_plane']}"
            faithful = "n/a" if s["faithful_rate"] is None else f"{s['faithful_rate']:.0%}"
            lines.append(
                f"| {world} | {method} | {s['seeds']} | {_cell(s['bce_1'], 4)} | {_cell(s['bce_100'], 4)} | "
                f"{_cell(s['bce_500'], 4)} | {_cell(s['d_lsbd'])} | {_cell(s['probe_r2'])} | "
                f"{_cell(s['mig_angles'])} | {_cell(s['dci_angles'])} | {s['single_plane']} | {faithful} | "
                f"{_cell(s['wall_seconds'], 0)} | "
                f"{reference} |"
            )
    return "\n".join(lines)


def figure(runs: list[dict[str, Any]], worlds: list[str], methods: list[str], path: Path) -> None:
    """Rollout BCE against k per world, one line per method with its 95% band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(worlds), figsize=(5.2 * len(worlds), 3.8), squeeze=False)
    for ax, world in zip(axes[0], worlds, strict=True):
        for method in methods:
            chosen = [r for r in runs if r["world"] == world and r["method"] == method]
            if not chosen:
                continue
            k = np.asarray(chosen[0]["k"])
            bce = np.asarray([r["bce"] for r in chosen])
            mean = bce.mean(axis=0)
            ax.plot(k, mean, label=method)
            if len(chosen) > 1:
                from scipy import stats

                half = stats.t.ppf(0.975, len(chosen) - 1) * bce.std(axis=0, ddof=1) / math.sqrt(len(chosen))
                ax.fill_between(k, mean - half, mean + half, alpha=0.2)
        for (paper_world, method), numbers in PAPER.items():  # the paper's figures as markers
            points = [(int(k), v) for k, v in numbers.items() if k.isdigit()]
            if paper_world == world and method in methods and points:
                ks, values = zip(*points, strict=True)
                ax.plot(ks, values, "k^" if method == "direct" else "ko", label=f"paper: {method}")
        ax.set(xlabel="rollout step k", ylabel="BCE per pixel", title=world, yscale="log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per method and world (0 .. seeds - 1)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    parser.add_argument("--worlds", nargs="+", choices=list(WORLDS), default=list(WORLDS))
    parser.add_argument("--steps", type=int, help="SGD steps of every recipe (default: each recipe's own)")
    parser.add_argument("--episodes", type=int, default=32, help="evaluation episodes of 500 steps")
    parser.add_argument("--jobs", type=int, default=1, help="processes training side by side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 20 steps, 4 episodes")
    parser.add_argument("--name", default="paper_protocol", help="name of the JSON and markdown files in results/")
    parser.add_argument("--figure", type=Path, help="where the figure goes (default: results/<name>.png)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.episodes = 1, args.steps or 20, 4
    jobs = [(w, m, s, args) for s in range(args.seeds) for w in args.worlds for m in args.methods]  # seed by seed
    started = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run, jobs))
    else:
        runs = [run(job) for job in jobs]
    summaries = {
        w: {m: summarise([r for r in runs if r["world"] == w and r["method"] == m]) for m in args.methods}
        for w in args.worlds
    }
    markdown = table(summaries)
    print()
    print(markdown)
    print(f"\n{len(runs)} runs in {time.perf_counter() - started:.0f} s")
    name = f"{args.name}_quick" if args.quick else args.name
    write_json(
        name,
        {
            "seeds": args.seeds,
            "steps": args.steps,
            "episodes": args.episodes,
            "jobs": args.jobs,
            "threads": args.threads,
            "paper": {f"{w}/{m}": v for (w, m), v in PAPER.items()},
            "summaries": _plain(summaries),
            "runs": _plain(runs),
        },
    )
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    figure(runs, args.worlds, args.methods, args.figure or RESULTS / f"{name}.png")


if __name__ == "__main__":
    main()
