"""Environment throughput: single-env steps/s (unwrapped and through gym.make) and vector transitions/s.

Usage: python benchmarks/env_throughput.py [--quick] [--env DynDis/GridWorld-v0]
Targets (2-core CPU): unwrapped >= 30k steps/s, gym.make >= 20k steps/s, 1024 envs >= 250k transitions/s.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import print_table, single_env_rate, vector_rate, write_json

CONFIGS = {
    "GridWorld 5x5": ("DynDis/GridWorld-v0", {}),
    "GridWorld (10,10,3,3,3)": (
        "DynDis/GridWorld-v0", {"grid_shape": (10, 10), "factors": {"size": 3, "colour": 3, "background": 3}}
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings (smoke run)")
    args = parser.parse_args()
    seconds = 0.2 if args.quick else 2.0
    rows, results = [], {}
    for name, (env_id, kwargs) in CONFIGS.items():
        env = gym.make(env_id, **kwargs)
        figures = {
            "single_unwrapped_steps_per_s": single_env_rate(env.unwrapped, seconds),
            "single_gym_make_steps_per_s": single_env_rate(env, seconds),
        }
        for n in (1, 64, 1024):
            figures[f"vector_{n}_transitions_per_s"] = vector_rate(gym.make_vec(env_id, num_envs=n, **kwargs), seconds)
        results[name] = figures
        rows.append([name, *figures.values()])
    print_table(["config", "single unwrapped", "single gym.make", "vec 1", "vec 64", "vec 1024"], rows)
    print(f"wrote {write_json('env_throughput', {'steps_or_transitions_per_s': results})}")


if __name__ == "__main__":
    main()
