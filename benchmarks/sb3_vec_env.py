"""SB3 VecEnv throughput: the adapter over the native vector env vs SB3's DummyVecEnv over single envs.

Usage: python -m benchmarks.sb3_vec_env [--quick]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import print_table, rate_over, write_json
from dyndis_learn.rl import make_sb3_vec_env

ENV_ID = "DynDis/GridWorldReach-v0"


def transitions_per_s(vec_env, n_envs: int, seconds: float) -> float:
    vec_env.seed(0)
    vec_env.reset()
    batches = np.random.default_rng(0).integers(0, vec_env.action_space.n, (64, n_envs))
    return rate_over(vec_env.step, batches, n_envs, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings (smoke run)")
    args = parser.parse_args()
    seconds = 0.2 if args.quick else 2.0
    rows, results = [], {}
    for n_envs in (1, 8, 64, 256):
        adapter = transitions_per_s(make_sb3_vec_env(ENV_ID, n_envs), n_envs, seconds)
        dummy = transitions_per_s(DummyVecEnv([lambda: gym.make(ENV_ID) for _ in range(n_envs)]), n_envs, seconds)
        results[n_envs] = {"adapter_transitions_per_s": adapter, "dummy_vec_env_transitions_per_s": dummy}
        rows.append([n_envs, adapter, dummy, adapter / dummy])
    print_table(["n_envs", "adapter (native)", "DummyVecEnv", "speed-up"], rows)
    print(f"wrote {write_json('sb3_vec_env', {'env_id': ENV_ID, 'results': results})}")


if __name__ == "__main__":
    main()
