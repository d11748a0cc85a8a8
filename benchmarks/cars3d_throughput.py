"""Cars3D throughput: cache build and load times, images/s for random batches, env steps/s.

Usage: python -m benchmarks.cars3d_throughput [--quick] [--image-size 64]
The cache is built in a temporary data directory, so the build is always cold.
Target (2-core CPU): >= 5k images/s for random batches of 512 after warm-up; full cache build <= 60 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import gymnasium as gym
import numpy as np

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import print_table, random_states, rate_over, single_env_rate, vector_rate, write_json
from dyndis_envs.cars3d import Cars3DEnv, Cars3DRenderSource


def timed(fn):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 cars and short timings (smoke run)")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    seconds = 0.2 if args.quick else 2.0
    factors = {"object": 12} if args.quick else None
    kwargs = {"factors": factors, "image_size": args.image_size}
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dyndis-bench-") as data:
        os.environ["DYNDIS_DATA"] = data
        env, results["cache_build_s"] = timed(lambda: Cars3DEnv(**kwargs))
        env, results["cache_load_s"] = timed(lambda: Cars3DEnv(**kwargs))
        results["views"] = env.factor_space.n_states
        for batch in (1, 64, 512):
            batches = random_states(env.factor_space.sizes, batch)
            results[f"images_per_s_batch_{batch}"] = rate_over(env.frames.batch, batches, batch, seconds)
        renderer = Cars3DRenderSource(args.image_size)
        renderer.render(np.zeros((1, 3), dtype=np.int64))  # build one mesh outside the timing
        results["uncached_render_images_per_s_batch_64"] = rate_over(
            lambda states: renderer.render(env.factor_space.to_value_indices(states)),
            random_states(env.factor_space.sizes, 64), 64, seconds,
        )
        results["single_unwrapped_steps_per_s"] = single_env_rate(env, seconds)
        wrapped = gym.make("DynDis/Cars3D-v0", **kwargs)
        results["single_gym_make_steps_per_s"] = single_env_rate(wrapped, seconds)
        for n in (64, 512):
            vec = gym.make_vec("DynDis/Cars3D-v0", num_envs=n, **kwargs)
            results[f"vector_{n}_transitions_per_s"] = vector_rate(vec, seconds)
        del os.environ["DYNDIS_DATA"]
    rows = [[key, value] for key, value in results.items()]
    print_table(["measure", "value"], rows)
    name = "cars3d_throughput_quick" if args.quick else "cars3d_throughput"
    print(f"wrote {write_json(name, {'image_size': args.image_size, 'results': results})}")


if __name__ == "__main__":
    main()
