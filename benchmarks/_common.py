"""Shared helpers of the benchmark scripts: timing, a printed table and a JSON result file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"

#: GridWorld 5 x 5: the step benchmarks' default environment (``learn_throughput`` and its worker process).
GRIDWORLD = "DynDis/GridWorld-v0"

#: Shapes3D with floor hue, wall hue and orientation active (1,500 states): the README's and the paper
#: protocol's subset, and the learn_structure suites'.
SHAPES3D_SUBSET: dict[str, Any] = {
    "floor_hue": "all",
    "wall_hue": "all",
    "orientation": "all",
    "object_hue": [0],
    "scale": [0],
    "shape": [0],
}

#: Parts of the 3D worlds that the RL and planner benchmarks share (``rl_reach`` and ``planner_scale``), so that
#: their figures are of the same world: the env id and its keyword arguments.
SHARED_WORLDS: dict[str, dict[str, Any]] = {
    # floor, wall and object hue, orientation (15,000 states)
    "shapes3d-4": {"env_id": "DynDis/Shapes3D-v0", "env_kwargs": {"factors": {"scale": [0], "shape": [0]}}},
    # one car: 4 elevations x 24 azimuths
    "cars3d-1": {"env_id": "DynDis/Cars3D-v0", "env_kwargs": {"factors": {"object": [0]}}},
    # the first eight cars
    "cars3d-8": {"env_id": "DynDis/Cars3D-v0", "env_kwargs": {"factors": {"object": 8}}},
}


def rate(fn: Callable[[], Any], items_per_call: int, min_seconds: float = 1.0, max_calls: int = 10**7) -> float:
    """Items per second of ``fn`` (called repeatedly for at least ``min_seconds``, after one warm-up call)."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= max_calls:
            return calls * items_per_call / elapsed


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def longest_stride(text: str) -> int | None:
    """A ``--longest-stride`` argument: ``warmup.cycles.longest_stride``, an integer or ``none``."""
    return None if text == "none" else int(text)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table."""
    cells = [[f"{c:,.0f}" if isinstance(c, float) and c >= 100 else (f"{c:.3g}" if isinstance(c, float) else str(c))
              for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |")


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically, with the machine's description.

    The processor is the CPU's model name where the system gives it (timings, and the rounding of float
    kernels, differ between CPU types: the docs compare figures per type), else the architecture.
    """
    try:  # imported here, not at the top: the env benchmarks need neither dyndis_learn nor torch
        from dyndis_learn.devices import processor_name
    except ImportError:
        processor_name = platform.processor
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "processor": processor_name() or platform.machine(), "architecture": platform.machine()}
    payload = {"machine": machine, **payload}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    return path


def rate_over(fn: Callable[[Any], Any], inputs: Sequence[Any], items_per_call: int, min_seconds: float) -> float:
    """Items per second of ``fn(x)``, cycling ``x`` through ``inputs`` (prepared outside the timing)."""
    position = [0]

    def call() -> None:
        position[0] = (position[0] + 1) % len(inputs)
        fn(inputs[position[0]])

    return rate(call, items_per_call, min_seconds)


def random_states(sizes: Sequence[int], batch: int, n: int = 16, seed: int = 0) -> list[Any]:
    """``n`` batches of uniformly random states (``batch`` x len(sizes) int64 arrays)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.integers(0, sizes, (batch, len(sizes))) for _ in range(n)]


def single_env_rate(env: Any, min_seconds: float) -> float:
    """Steps per second of a Gymnasium env under random actions, resetting when an episode ends."""
    import numpy as np

    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, 1000).tolist()

    def steps() -> None:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    return rate(steps, len(actions), min_seconds)


def vector_rate(vec: Any, min_seconds: float) -> float:
    """Transitions per second of a Gymnasium vector env under random actions."""
    import numpy as np

    vec.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, vec.single_action_space.n, (32, vec.num_envs))
    return rate_over(vec.step, actions, vec.num_envs, min_seconds)
