"""The latent planner at scale: success, path length against the shortest, and time per decision on Goal tasks.

For each suite a world model is trained with the learner's default recipe (``dyndis-learn train`` as a user
runs it, the suite's latent size and step budget), or taken from ``--models NAME=PATH``; then the planner
(:class:`dyndis_learn.planner.LatentPlanner`, its default beam width) acts on the world's Goal task by
re-planning every step. Each episode starts and ends at uniformly drawn states (the Goal env's own reset) and
is cut off after twice the world's diameter (the longest shortest path), which is also the search depth.

Per suite: the success rate, the mean path length over the shortest path of the successful episodes, the
share of first plans that reached the goal in the search (``Plan.reached``), and the median and 95th
percentile of the seconds per decision (one thread: the current image's latent and the search; the goal image
is encoded once per episode). On an angle-bin model the agent's latent comes from an
:class:`~dyndis_learn.belief.AngleBeliefFilter` over the episode's frames and actions (``--state encoding``:
from each image's encoding alone, as on models without bins). ``--synthesis-modes`` sets how many modes per
circle the decoder checks in the goal's (and, without the filter, each image's) encoding on an angle-bin
model (default: the planner's).

Usage: python -m benchmarks.planner_scale [--suites ...] [--episodes 200] [--models NAME=PATH ...] [--quick]
       [--synthesis-modes K] [--state filter|encoding]
Targets (issue 17): >= 99% success at <= 1.05x the shortest path on every world, <= 50 ms per decision on the
4-factor Shapes3D.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import dyndis_envs  # noqa: F401  (registers the environments)
from benchmarks._common import RESULTS, SHARED_WORLDS, print_table, write_json
from dyndis_learn import TrainConfig, load_model
from dyndis_learn.belief import AngleBeliefFilter
from dyndis_learn.checkpoint import CHECKPOINT_NAME, read_checkpoint
from dyndis_learn.planner import LatentPlanner

#: Suites: the world (env id and kwargs), the latent size and the training budget of its model.
SUITES: dict[str, dict[str, Any]] = {
    "shapes3d-4": {
        **SHARED_WORLDS["shapes3d-4"],
        "latent_dim": 8,
        "train": ["--steps", "600"],
    },
    "shapes3d-6": {
        "env_id": "DynDis/Shapes3D-v0",
        "env_kwargs": {},
        "latent_dim": 12,
        "train": ["--steps", "1200", "--warmup.steps", "900"],
    },
    "cars3d-1": {
        **SHARED_WORLDS["cars3d-1"],
        "latent_dim": 4,
        "train": ["--steps", "600"],
    },
    "cars3d-8": {
        **SHARED_WORLDS["cars3d-8"],
        "latent_dim": 6,
        "train": ["--steps", "1200"],
    },
    "cars3d-full": {
        "env_id": "DynDis/Cars3D-v0",
        "env_kwargs": {},  # 4 elevations x 24 azimuths x 183 cars
        "latent_dim": 6,
        "train": ["--steps", "6000", "--warmup.steps", "3000"],  # the budget its figures were measured with
    },
}


def diameter(sizes: tuple[int, ...]) -> int:
    """The longest shortest path between two states when every factor is cyclic."""
    return sum(size // 2 for size in sizes)


def shortest_path(start: np.ndarray, goal: np.ndarray, sizes: tuple[int, ...]) -> int:
    """Fewest moves between two states when every factor is cyclic."""
    d = np.abs(np.asarray(start) - np.asarray(goal))
    return int(np.minimum(d, np.asarray(sizes) - d).sum())


def evaluate_planner(
    model_path: Path, episodes: int, synthesis_modes: int | None = None, state: str = "filter"
) -> dict[str, Any]:
    """Success rate, mean path length / shortest path and seconds per decision of the planner on the model's
    Goal task (see the module docstring); ``synthesis_modes`` as :meth:`LatentPlanner.from_model` takes it;
    ``state``: where the agent is, from an :class:`AngleBeliefFilter` ("filter", angle-bin models; others
    encode) or from each image's encoding ("encoding")."""
    config = TrainConfig.from_dict(read_checkpoint(model_path).config)
    sizes = gym.make(config.env.id, **config.env.kwargs).unwrapped.factor_space.sizes
    limit = 2 * diameter(sizes)
    model = load_model(model_path)
    planner = LatentPlanner.from_model(model, synthesis_modes=synthesis_modes, max_depth=limit)
    belief = AngleBeliefFilter(model) if state == "filter" and model.angle_bins is not None else None
    env = gym.make(config.env.id.replace("-v0", "Goal-v0"), max_episode_steps=limit, **config.env.kwargs)
    successes, ratios, decisions, first_reached = 0, [], [], []
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        shortest = shortest_path(info["factors"], info["goal_factors"], sizes)
        goal = planner.latent(obs["desired_goal"])
        if belief is not None:
            belief.reset(obs["observation"])
        for length in range(1, limit + 1):
            started = time.perf_counter()
            current = planner.latent(obs["observation"]) if belief is None else belief.latent()
            found = planner.search(current, goal)
            decisions.append(time.perf_counter() - started)
            if length == 1:
                first_reached.append(found.reached)
            if not found.actions:  # the model thinks it is there: it is not, or the episode would have ended
                break
            obs, _, terminated, truncated, info = env.step(found.actions[0])
            if belief is not None:  # counted with the next decision
                started = time.perf_counter()
                belief.update(obs["observation"], found.actions[0])
                decisions[-1] += time.perf_counter() - started
            if terminated:
                successes += 1
                ratios.append(length / shortest)
                break
            if truncated:
                break
    return {
        "env_id": config.env.id,
        "env_kwargs": config.env.kwargs,
        "sizes": list(sizes),
        "episodes": episodes,
        "max_depth": limit,
        "beam_width": planner.beam_width,
        "synthesis_modes": synthesis_modes,
        "state": "filter" if belief is not None else "encoding",
        "success_rate": successes / episodes,
        "mean_path_over_shortest": float(np.mean(ratios)) if ratios else float("nan"),
        "first_plan_reached": float(np.mean(first_reached)),
        "decision_ms_median": 1000 * float(np.median(decisions)),
        "decision_ms_p95": 1000 * float(np.percentile(decisions, 95)),
        "decisions": len(decisions),
    }


def train(suite: str, out: Path, threads: int, quick: bool) -> Path:
    """Train the suite's model with the learner's command line (its default recipe) into ``out``."""
    spec = SUITES[suite]
    budget = ["--steps", "20", "--warmup.steps", "10"] if quick else spec["train"]
    command = [
        sys.executable, "-m", "dyndis_learn", "train", "--out", str(out), "--env.id", spec["env_id"],
        "--env.kwargs", json.dumps(spec["env_kwargs"]), "--model.latent-dim", str(spec["latent_dim"]),
        "--threads", str(threads), "--quiet", "--no-report", *budget,
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"{suite}: trained in {time.perf_counter() - started:.0f} s -> {out}", flush=True)
    return out / CHECKPOINT_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", choices=sorted(SUITES), default=list(SUITES))
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--models", nargs="*", default=[], metavar="NAME=PATH", help="use these saved models")
    parser.add_argument("--model-dir", type=Path, default=RESULTS / "planner_models", help="trained models go here")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training (the planner uses 1)")
    parser.add_argument("--quick", action="store_true", help="tiny models and 5 episodes (smoke run)")
    parser.add_argument(
        "--synthesis-modes", type=int, help="modes per circle the decoder checks (default: the planner's own)"
    )
    parser.add_argument(
        "--state", choices=["filter", "encoding"], default="filter", help="the agent's latent (see the docstring)"
    )
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.models)
    unknown = sorted(set(given) - set(SUITES))
    if unknown:
        parser.error(f"--models: unknown suite(s) {unknown}; the suites are {sorted(SUITES)}")
    episodes, name = (5, "planner_scale_quick") if args.quick else (args.episodes, "planner_scale")
    results = {}
    for suite in args.suites:
        folder = args.model_dir / (f"{suite}_quick" if args.quick else suite)
        if suite in given:
            path = Path(given[suite])
        elif (folder / CHECKPOINT_NAME).is_file():
            path = folder / CHECKPOINT_NAME
            print(f"{suite}: the model trained earlier in {folder}", flush=True)
        else:
            path = train(suite, folder, args.threads, args.quick)
        torch.set_num_threads(1)
        results[suite] = {
            "model": str(path),
            "date": time.strftime("%Y-%m-%d"),
            **evaluate_planner(path, episodes, args.synthesis_modes, args.state),
        }
        r = results[suite]
        print(f"{suite}: success {r['success_rate']:.1%}, path/shortest {r['mean_path_over_shortest']:.3f}, "
              f"{r['decision_ms_median']:.1f} ms per decision", flush=True)  # fmt: skip
    print_table(
        ["suite", "states", "max depth", "success", "path / shortest", "first plan reached", "ms / decision (p95)"],
        [
            [
                suite,
                int(np.prod(r["sizes"])),
                r["max_depth"],
                f"{r['success_rate']:.1%}",
                f"{r['mean_path_over_shortest']:.3f}",
                f"{r['first_plan_reached']:.1%}",
                f"{r['decision_ms_median']:.1f} ({r['decision_ms_p95']:.1f})",
            ]
            for suite, r in results.items()
        ],
    )
    # Suites measured by earlier invocations stay in the file (each with its own episode count).
    previous = RESULTS / f"{name}.json"
    kept = json.loads(previous.read_text()).get("suites", {}) if previous.is_file() else {}
    print(f"wrote {write_json(name, {'suites': {**kept, **results}})}")


if __name__ == "__main__":
    main()
