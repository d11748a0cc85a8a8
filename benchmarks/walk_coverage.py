"""How evenly does the cycles warm-up's walk see a world? Seen share, and each factor's least-seen lines.

The walk (:func:`dyndis_learn.cycles.walk_cycles`, as the cycles warm-up walks it) is walked for each seed and
each ``--longest-stride``. A *line* of factor ``f`` is one setting of every other factor, along which ``f``
takes all its values (Cars3D's car factor: one view, 183 cars). Per factor, the table gives the share of its
lines' states that the walk saw, at the least-seen line and at the 10th percentile of lines, and the share of
the states the walk never saw that lie on a line it saw less than ``--poor`` of: where the encoder has to
tell the factor's values apart from few examples at that setting. ``info["factors"]`` is read for
measurement only, as the report does.

Usage: python -m benchmarks.walk_coverage [--env-id DynDis/Cars3D-v0] [--seeds 0 1 2] [--walk-steps 60000]
    [--longest-stride 24 none] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import gymnasium as gym
import numpy as np

import dyndis_envs  # noqa: F401  (registers the environments)
from benchmarks._common import longest_stride, print_table, write_json
from dyndis_learn.cycles import LONGEST_STRIDE, discover_cycles, walk_cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="DynDis/Cars3D-v0")
    parser.add_argument("--env-kwargs", default="{}", help="JSON object of the env's keyword arguments")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--walk-steps", type=int, default=60_000, help="warmup.cycles.walk_steps")
    parser.add_argument(
        "--longest-stride",
        nargs="+",
        type=longest_stride,
        default=[LONGEST_STRIDE, None],
        help="warmup.cycles.longest_stride values ('none': up to the cycle's length)",
    )
    parser.add_argument("--poor", type=float, default=0.6, help="a line seen less than this share is poorly seen")
    parser.add_argument("--quick", action="store_true", help="smoke test: seed 0, a walk of 2,000 steps")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.walk_steps = [0], 2000
    kwargs: dict[str, Any] = json.loads(args.env_kwargs)
    space = gym.make(args.env_id, **kwargs).unwrapped.factor_space
    active = [f for f, n in enumerate(space.sizes) if n > 1]
    sizes = tuple(space.sizes[f] for f in active)

    rows, results = [], []
    for seed in args.seeds:
        structure = discover_cycles(args.env_id, kwargs, seed=seed)
        latent_dim = 2 * len(structure.lengths)
        for stride in args.longest_stride:
            start = time.perf_counter()
            walk = walk_cycles(args.env_id, kwargs, structure, args.walk_steps, latent_dim, seed, stride)
            seen = np.zeros(sizes, dtype=bool)
            seen[tuple(walk.factors[:, active].T)] = True
            result: dict[str, Any] = {
                "seed": seed,
                "longest_stride": stride,
                "seen": float(seen.mean()),
                "seconds": time.perf_counter() - start,
                "factors": {},
            }
            for axis, f in enumerate(active):
                lines = seen.mean(axis=axis, keepdims=True)  # the share of each line the walk saw
                coverage = np.broadcast_to(lines, seen.shape)[~seen]  # of the line through each unseen state
                result["factors"][space.names[f]] = {
                    "least_seen_line": float(lines.min()),
                    "p10_line": float(np.percentile(lines, 10)),
                    "unseen_on_poor_lines": float((coverage < args.poor).mean()) if coverage.size else 0.0,
                }
            results.append(result)
            for name, figures in result["factors"].items():
                rows.append(
                    [
                        seed,
                        "none" if stride is None else stride,
                        f"{result['seen']:.1%}",
                        name,
                        f"{figures['least_seen_line']:.1%}",
                        f"{figures['p10_line']:.1%}",
                        f"{figures['unseen_on_poor_lines']:.1%}",
                    ]
                )
    print(f"{args.env_id}, walk of {args.walk_steps} steps; a line is poorly seen below {args.poor:.0%}")
    print_table(
        ["seed", "longest stride", "seen", "factor", "least-seen line", "p10 line", "unseen on poor lines"], rows
    )
    payload = {"env_id": args.env_id, "env_kwargs": kwargs, "walk_steps": args.walk_steps, "poor": args.poor}
    print(f"wrote {write_json('walk_coverage', {**payload, 'results': results})}")


if __name__ == "__main__":
    main()
