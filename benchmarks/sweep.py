"""Sweeps: 8 GridWorld runs on a local Ray with 2 CPUs against the same runs one after another.

The same grid (``seed=0..7``, one thread per run) is swept three times into fresh folders: sequentially in
one plain process (``--jobs 1``), in plain processes two at a time (``--jobs 2``), and as Ray tasks on a
local Ray instance with ``--cpus`` CPUs (its start-up included in the wall time). Every run trains
``--steps`` SGD steps and writes its report, as ``dyndis-learn sweep`` does.

Figures per executor: the wall time; the sum of the tasks' own seconds (training and report, measured
inside each task); the runs in flight, ``sum of task seconds / wall``, how many runs were at work on
average; and the overhead per run, ``(wall - sum of task seconds / slots) / runs``: everything that is not
a run's own work (Ray's start-up and scheduling, worker processes and their imports), spread over the
runs. Targets: Ray's wall time <= 0.6 x the sequential one with 2 CPUs, and Ray's overhead per
run at most 5 s above the plain processes' (``--jobs 2``).

Usage: python -m benchmarks.sweep [--quick] [--runs 8] [--steps 100] [--cpus 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import print_table, write_json
from dyndis_learn import TrainConfig
from dyndis_learn.sweep import Executor, ProcessExecutor, RayExecutor, Sweep

#: GridWorld 5 x 5 at 32 x 32 pixels with a short warm-up and evaluation: a run of a few seconds to a minute.
BASE = {
    "env": {"id": "DynDis/GridWorld-v0", "kwargs": {"image_size": 32}},
    "threads": 1,
    "warmup": {"steps": 50},
    "optim": {"dynamics_ramp_steps": 25},
    "evaluation": {"episodes": 8, "horizon": 100, "gif_steps": 20},
}
#: The tiny runs of --quick.
QUICK = {
    "env": {"id": "DynDis/GridWorld-v0", "kwargs": {"image_size": 16}},
    "threads": 1,
    "model": {"channels": [8, 8], "hidden_dim": 32},
    "warmup": {"steps": 2, "graph": {"exploration_batches": 1, "exploration_episodes": 32, "exploration_steps": 25}},
    "optim": {"dynamics_ramp_steps": 2},
    "evaluation": {"episodes": 2, "horizon": 12, "gif_steps": 4},
}


def sweep_once(name: str, executor: Executor, config: TrainConfig, runs: int, slots: int,
               before: float = 0.0) -> dict[str, Any]:
    """Sweep ``seed=0..runs-1`` into a fresh folder; ``before``: seconds already spent (Ray's start-up)."""
    with tempfile.TemporaryDirectory(prefix="dyndis-sweep-bench-") as folder:
        sweep = Sweep.from_grid(Path(folder) / "sweep", config, {"seed": list(range(runs))})
        started = time.perf_counter()
        rows = sweep.run(executor, log=lambda line: print(f"  {name}: {line}", flush=True))
        wall = time.perf_counter() - started + before
    failed = [row["run"] for row in rows if row["status"] != "done"]
    if failed:
        raise RuntimeError(f"{name}: runs {failed} failed; see the lines above.")
    tasks = sum(row["task_seconds"] for row in rows)
    return {
        "executor": name,
        "slots": slots,
        "wall_seconds": wall,
        "startup_seconds": before,
        "task_seconds": tasks,
        "train_seconds": sum(row["training.train_seconds"] for row in rows),
        "overhead_per_run": (wall - tasks / slots) / runs,
        "runs_in_flight": tasks / wall,  # the mean number of runs at work: 1 sequentially, up to `slots`
        "all_criteria": sum(1 for row in rows if row.get("criteria.all") is True),
        "load_average_after": os.getloadavg()[0],  # the 1-minute load at the sweep's end: how shared it ran
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 tiny runs (the figures mean nothing)")
    parser.add_argument("--runs", type=int, default=8, help="runs in the grid (seeds 0..runs-1)")
    parser.add_argument("--steps", type=int, default=100, help="SGD steps per run")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (and --jobs)")
    args = parser.parse_args()
    runs, steps = (2, 6) if args.quick else (args.runs, args.steps)
    config = TrainConfig.from_dict({**(QUICK if args.quick else BASE), "steps": steps})
    load_before = os.getloadavg()

    results = [
        sweep_once("sequential (--jobs 1)", ProcessExecutor(1), config, runs, 1),
        sweep_once(f"processes (--jobs {args.cpus})", ProcessExecutor(args.cpus), config, runs, args.cpus),
    ]
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - started
    try:
        results.append(sweep_once(f"Ray ({args.cpus} CPUs)", RayExecutor(), config, runs, args.cpus, startup))
    finally:
        ray.shutdown()
    load_after = os.getloadavg()

    sequential, processes, on_ray = results
    for result in results:
        result["wall_ratio_vs_sequential"] = result["wall_seconds"] / sequential["wall_seconds"]
    extra_overhead = on_ray["overhead_per_run"] - processes["overhead_per_run"]
    print(f"\n{runs} GridWorld runs of {steps} steps, 1 thread each; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (the machine's other processes share its {os.cpu_count()} cores)")
    print_table(
        ["executor", "slots", "wall s", "task s (sum)", "in flight", "overhead/run s", "wall vs sequential",
         "all criteria", "load"],
        [
            [r["executor"], r["slots"], r["wall_seconds"], r["task_seconds"], r["runs_in_flight"],
             r["overhead_per_run"], f"{r['wall_ratio_vs_sequential']:.2f}x", f"{r['all_criteria']}/{runs}",
             f"{r['load_average_after']:.1f}"]
            for r in results
        ],
    )
    print(f"Ray: wall {on_ray['wall_ratio_vs_sequential']:.2f}x the sequential sweep (target <= 0.6x); its start-up "
          f"{startup:.1f} s; overhead per run {extra_overhead:+.1f} s against plain processes (target <= 5 s)")
    path = write_json(
        "sweep",
        {
            "quick": args.quick,
            "runs": runs,
            "steps": steps,
            "cpus": args.cpus,
            "config": config.to_dict(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "results": results,
            "ray_wall_ratio": on_ray["wall_ratio_vs_sequential"],
            "ray_extra_overhead_per_run": extra_overhead,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
