"""Data-parallel training: transitions/s of 2 ranks x 1 thread against 1 rank x 1 thread, and the criteria.

Each configuration trains the default GridWorld 5x5 recipe through the command line
(``dyndis-learn train --nproc N --threads 1``: N processes started by torchrun's launcher, gloo, DDP) and
writes the report. Throughput is measured over the dynamics phase (after the warm-up, whose batches hold
single states), from the run log's ``wall_time`` (SGD steps only): every step trains on ``episodes_per_step x
episode_steps`` transitions per rank. The criteria are the report's (``criteria.all`` and each check).
The machine's load average is recorded before and after each run: other processes on the cores lower the
scaling.

Usage: python -m benchmarks.learn_ddp [--quick] [--ranks 1 2 1] [--seed 0]
The scaling is against the mean of the runs with the fewest ranks.
Target (issue 15): >= 1.6x the transitions/s of 1 rank with 2 ranks on a 2-core machine, criteria still met.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import print_table, write_json
from dyndis_learn import TrainConfig

#: Overrides of ``--quick`` (a smoke test of the script: its figures and criteria mean nothing).
QUICK = [
    "--steps", "40", "--warmup.steps", "10", "--optim.dynamics-ramp-steps", "10", "--logging.log-every", "5",
    "--evaluation.episodes", "4", "--evaluation.horizon", "50", "--evaluation.gif-steps", "4",
]


def _load() -> float:
    """The machine's 1-minute load average."""
    return os.getloadavg()[0]


def run(ranks: int, seed: int, out: Path, quick: bool) -> dict[str, Any]:
    """Train and report into ``out`` with ``ranks`` processes of 1 thread; returns the figures."""
    command = [sys.executable, "-m", "dyndis_learn", "train", "--out", str(out), "--nproc", str(ranks),
               "--threads", "1", "--seed", str(seed), "--quiet", *(QUICK if quick else [])]
    load_before = _load()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    config = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    with open(out / "train_log.csv", newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    start = next(row for row in rows if row["step"] >= config.warmup.steps)  # the first row of the dynamics phase
    end = rows[-1]
    steps = end["step"] - start["step"]
    seconds = end["wall_time"] - start["wall_time"]
    transitions = ranks * config.data.episodes_per_step * config.data.episode_steps * steps
    report = json.loads((out / "report.json").read_text())
    criteria = report["criteria"]
    return {
        "ranks": ranks,
        "threads_per_rank": 1,
        "steps": int(end["step"]),
        "measured_steps": int(steps),
        "transitions_per_s": transitions / seconds,
        "ms_per_step": 1000 * seconds / steps,
        "train_seconds": end["wall_time"],
        "command_seconds": wall,
        "all": criteria["all"],
        "failed": [name for name, value in criteria.items() if value is False and name != "all"],
        "load_before": load_before,
        "load_after": _load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (figures and criteria mean nothing)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts to run, in order")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="learn_ddp_") as tmp:
        results = [run(ranks, args.seed, Path(tmp) / f"run{i}", args.quick) for i, ranks in enumerate(args.ranks)]
    fewest = min(args.ranks)  # the base: the mean of its runs (``--ranks 1 2 1`` brackets a drift of the load)
    base = sum(r["transitions_per_s"] for r in results if r["ranks"] == fewest) / args.ranks.count(fewest)
    for result in results:
        result["scaling"] = result["transitions_per_s"] / base
    print_table(
        ["ranks x threads", "transitions/s", "ms/step", "scaling", "train s", "command s", "criteria all", "failed",
         "load before/after"],
        [
            [f"{r['ranks']} x 1", r["transitions_per_s"], r["ms_per_step"], f"{r['scaling']:.2f}x", r["train_seconds"],
             r["command_seconds"], r["all"], ", ".join(r["failed"]) or "-",
             f"{r['load_before']:.1f} / {r['load_after']:.1f}"]
            for r in results
        ],
    )
    path = write_json("learn_ddp", {"quick": args.quick, "seed": args.seed, "runs": results})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
