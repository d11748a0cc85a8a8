"""Environment throughput: single-env steps/s (unwrapped and through gym.make) and vector transitions/s.

Usage: python benchmarks/env_throughput.py [--quick]
Targets (2-core CPU): unwrapped >= 30k steps/s, gym.make >= 20k steps/s, 1024 envs >= 250k transitions/s;
the native Goal vector env >= 5x SyncVectorEnv's transitions/s at 64 envs.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import print_table, single_env_rate, vector_rate, write_json

CONFIGS = {
    "GridWorld 5x5": ("DynDis/GridWorld-v0", {}),
    "GridWorld 5x5, noise +-4": ("DynDis/GridWorld-v0", {"observation_noise": 4}),
    "GridWorld (10,10,3,3,3)": (
        "DynDis/GridWorld-v0", {"grid_shape": (10, 10), "factors": {"size": 3, "colour": 3, "background": 3}}
    ),
}
#: Goal ids, timed as the native vector env and as Gymnasium's SyncVectorEnv over single envs.
GOAL_CONFIGS = {
    "GridWorldGoal 5x5": ("DynDis/GridWorldGoal-v0", {}),
    "GridWorldGoal 5x5, noise +-4": ("DynDis/GridWorldGoal-v0", {"observation_noise": 4}),
}
GOAL_ENVS = 64


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

    goal_rows, goal_results = [], {}
    for name, (env_id, kwargs) in GOAL_CONFIGS.items():
        native = vector_rate(gym.make_vec(env_id, num_envs=GOAL_ENVS, **kwargs), seconds)
        sync = vector_rate(gym.make_vec(env_id, num_envs=GOAL_ENVS, vectorization_mode="sync", **kwargs), seconds)
        goal_results[name] = {"native_transitions_per_s": native, "sync_transitions_per_s": sync,
                              "speedup": native / sync}
        goal_rows.append([name, native, sync, native / sync])
    print()
    print_table([f"Goal config, {GOAL_ENVS} envs", "native", "SyncVectorEnv", "speed-up"], goal_rows)
    path = write_json(
        "env_throughput", {"steps_or_transitions_per_s": results, f"goal_vector_{GOAL_ENVS}_envs": goal_results}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
