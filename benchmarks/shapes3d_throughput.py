"""Shapes3D throughput: procedural warm-up and images/s, env steps/s, and the file backend on a generated h5.

Usage: python -m benchmarks.shapes3d_throughput [--quick] [--full-file] [--file-floor-hues 1]
The file part writes a 3dshapes.h5 in the real layout (procedural images, gzip chunks like the real file)
to a temporary folder, over all values of every factor but ``--file-floor-hues`` floor hues (1: 48,000
images, 590 MB of pixels; ``--full-file``: all 480,000, 5.9 GB), then loads it in a fresh process to
measure the load time and peak memory, and random-batch reads from RAM and straight from h5py.
Targets (2-core CPU): >= 10k images/s for random batches of 512 after a warm-up of at most 10 s;
>= 3k steps/s through gym.make; full set loaded with a peak of at most 7 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import print_table, random_states, rate, rate_over, single_env_rate, vector_rate, write_json
from dyndis_envs.shapes3d import HUES, ORIENTATIONS, SCALES, SHAPES, Shapes3DFileSource, Shapes3DSource

SIZES = np.array([10, 10, 10, 8, 4, 15])


def write_file(path: Path, sizes: np.ndarray) -> int:
    """A 3dshapes.h5 in the real layout over the first ``sizes[k]`` values of each factor; returns its images."""
    states = np.indices(sizes).reshape(len(sizes), -1).T
    values = (HUES, HUES, HUES, SCALES, SHAPES, ORIENTATIONS)
    labels = np.stack([np.asarray(v)[states[:, k]] for k, v in enumerate(values)], axis=1)
    source = Shapes3DSource(64)
    with h5py.File(path, "w") as file:
        images = file.create_dataset(
            "images", (len(states), 64, 64, 3), dtype=np.uint8, chunks=(64, 64, 64, 3), compression="gzip"
        )
        for start in range(0, len(states), 8192):
            images[start : start + 8192] = source.render(states[start : start + 8192])
        file["labels"] = labels
    return len(states)


def load_in_fresh_process(path: Path, seconds: float) -> dict[str, float]:
    """Run :func:`_measure_load` in a new interpreter (so that its peak memory is the load's alone)."""
    code = f"from benchmarks.shapes3d_throughput import _measure_load; _measure_load({str(path)!r}, {seconds})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _resident_gib() -> float:
    """The process's current resident memory (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmRSS in /proc/self/status")


def _measure_load(path: str, seconds: float) -> None:
    results: dict[str, float] = {}
    results["file_rss_before_load_gib"] = _resident_gib()
    start = time.perf_counter()
    source = Shapes3DFileSource(path)
    results["file_load_s"] = time.perf_counter() - start
    results["file_load_peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    results["file_rss_after_load_gib"] = _resident_gib()
    sizes = [len(f.values) for f in source.factors]
    for batch in (1, 64, 512):
        results[f"file_ram_images_per_s_batch_{batch}"] = rate_over(
            source.render, random_states(sizes, batch), batch, seconds
        )
    del source
    with h5py.File(path, "r") as file:
        images = file["images"]
        rng = np.random.default_rng(0)
        batches = [np.sort(rng.choice(len(images), 64, replace=False)) for _ in range(8)]
        position = [0]

        def read() -> None:
            position[0] = (position[0] + 1) % len(batches)
            images[batches[position[0]]]

        results["file_h5py_random_images_per_s_batch_64"] = rate(read, 64, seconds)
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings, a file of 4,800 images (smoke run)")
    parser.add_argument("--full-file", action="store_true", help="the file benchmark on all 480,000 images")
    parser.add_argument("--file-floor-hues", type=int, default=1, help="floor hues in the generated file (1-10)")
    args = parser.parse_args()
    seconds = 0.3 if args.quick else 2.0
    results: dict[str, float] = {}

    start = time.perf_counter()
    source = Shapes3DSource(64)
    source.warm_up()
    results["warm_up_s (all 480 geometries)"] = time.perf_counter() - start
    results["layers_mb"] = source.layer_bytes / 1e6
    for batch in (1, 64, 512):
        results[f"procedural_images_per_s_batch_{batch}"] = rate_over(
            source.render, random_states(SIZES, batch), batch, seconds
        )
    env = gym.make("DynDis/Shapes3D-v0")
    env.unwrapped.source.warm_up()
    results["single_gym_make_steps_per_s"] = single_env_rate(env, seconds)
    results["single_unwrapped_steps_per_s"] = single_env_rate(env.unwrapped, seconds)
    vec = gym.make_vec("DynDis/Shapes3D-v0", num_envs=256)
    vec.unwrapped.env.source.warm_up()  # measure steps, not the first tracing of each geometry
    results["vector_256_transitions_per_s"] = vector_rate(vec, seconds)

    file_sizes = SIZES.copy()
    file_sizes[0] = 10 if args.full_file else args.file_floor_hues
    if args.quick:
        file_sizes[:2] = 1  # 4,800 images
    with tempfile.TemporaryDirectory(prefix="dyndis-bench-") as folder:
        path = Path(folder) / "3dshapes.h5"
        start = time.perf_counter()
        n_images = write_file(path, file_sizes)
        results["file_images"] = n_images
        results["file_pixels_gib"] = n_images * 64 * 64 * 3 / 2**30
        results["file_size_mb"] = path.stat().st_size / 1e6
        results["file_write_s"] = time.perf_counter() - start
        results.update(load_in_fresh_process(path, seconds))

    print_table(["measure", "value"], [[key, value] for key, value in results.items()])
    name = "shapes3d_throughput_quick" if args.quick else "shapes3d_throughput"
    print(f"wrote {write_json(name, {'image_size': 64, 'results': results})}")


if __name__ == "__main__":
    main()
