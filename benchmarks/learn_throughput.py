"""Training throughput: time per SGD step, where it goes, achieved GFLOP/s, and action-matrix speed.

1. The SGD step of the trainer on the original notebook configuration (same network, GridWorld 5x5,
   latent 4, 3 episodes x 20 steps), after warm-up (all loss terms on), split into data collection,
   forward, backward and the Adam step; its FLOPs (torch's FlopCounterMode) give the achieved GFLOP/s,
   set against a 1024 x 1024 fp32 matmul on the same threads. The default configuration (4 x 20) too.
2. Every action's matrix, forward + backward, at n = 4, 8, 16, 32 (n actions: n/2 factors), with the
   batched Givens product and with matrix_exp, against the original's way (one action at a time, one
   Givens matrix per plane in a Python loop), re-implemented here and also against its figures measured
   on this machine (1.1, 5.3, 25, 147 ms per action).

Usage: python benchmarks/learn_throughput.py [--quick] [--threads 2]
Targets: SGD step <= 0.5 x 0.15 s; all action matrices at n = 16 >= 50x faster than the original.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._common import print_table, write_json
from dyndis_learn import TrainConfig, Trainer
from dyndis_learn.rotations import ActionRotations, n_planes, plane_pairs

ORIGINAL_STEP_SECONDS = 0.15
ORIGINAL_MS_PER_ACTION = {4: 1.1, 8: 5.3, 16: 25.0, 32: 147.0}


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return 2 * 1024**3 / median_seconds(lambda: a @ b, repeats) / 1e9


def sgd_step(episodes: int, steps: int, repeats: int) -> dict[str, Any]:
    """Median time of the parts of one SGD step, and its FLOPs."""
    config = TrainConfig(
        episodes_per_step=episodes,
        episode_steps=steps,
        warmup_steps=0,
        dynamics_ramp_steps=1,
        threads=torch.get_num_threads(),
    )
    trainer = Trainer(config)
    for _ in range(3):
        trainer.train_step()
    whole = median_seconds(trainer.train_step, repeats)
    batch = trainer.collector.collect(0)
    collect = median_seconds(lambda: trainer.collector.collect(0), repeats)
    forward = median_seconds(lambda: trainer.losses(batch, trainer.step), repeats)

    def forward_backward() -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.losses(batch, trainer.step)["loss"].backward()

    backward = median_seconds(forward_backward, repeats) - forward
    adam = median_seconds(trainer.optimizer.step, repeats)
    with FlopCounterMode(display=False) as counter:
        forward_backward()
    flops = counter.get_total_flops()
    trainer.close()
    return {
        "episodes": episodes,
        "steps": steps,
        "frames": episodes * (steps + 1),
        "step_s": whole,
        "collect_s": collect,
        "forward_s": forward,
        "backward_s": backward,
        "adam_s": adam,
        "gflop": flops / 1e9,
        "gflops_per_s": flops / 1e9 / whole,
    }


def original_action_matrix(angles: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """The original way: one action, one Givens matrix per plane, multiplied in a Python loop."""
    matrix = torch.eye(latent_dim)
    for k, (i, j) in enumerate(plane_pairs(latent_dim).tolist()):
        givens = torch.eye(latent_dim)
        cos, sin = torch.cos(angles[k]), torch.sin(angles[k])
        givens = givens.index_put(
            (torch.tensor([i, j, i, j]), torch.tensor([i, j, j, i])), torch.stack([cos, cos, -sin, sin])
        )
        matrix = matrix @ givens
    return matrix


def action_matrices(latent_dim: int, repeats: int) -> dict[str, Any]:
    n_actions = latent_dim
    results: dict[str, Any] = {"n": latent_dim, "actions": n_actions, "planes": n_planes(latent_dim)}
    for name in ("givens", "exp"):
        rotations = ActionRotations(n_actions, latent_dim, name, init_scale=1.0)

        def all_actions(r: ActionRotations = rotations) -> None:
            r.angles.grad = None
            r.matrices().sum().backward()

        results[f"{name}_ms"] = 1000 * median_seconds(all_actions, repeats)
    angles = torch.randn(n_planes(latent_dim), requires_grad=True)

    def one_original() -> None:
        angles.grad = None
        original_action_matrix(angles, latent_dim).sum().backward()

    per_action = 1000 * median_seconds(one_original, max(3, repeats // 4 if latent_dim >= 32 else repeats))
    results["original_here_ms"] = per_action * n_actions
    results["original_reported_ms"] = ORIGINAL_MS_PER_ACTION[latent_dim] * n_actions
    results["speedup_vs_reported"] = results["original_reported_ms"] / results["givens_ms"]
    results["speedup_vs_here"] = results["original_here_ms"] / results["givens_ms"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 15

    gflops = matmul_gflops(repeats)
    steps = [sgd_step(3, 20, repeats), sgd_step(4, 20, repeats)]
    print(
        f"\nSGD step ({args.threads} threads; 1024x1024 fp32 matmul here: {gflops:.0f} GFLOP/s; "
        "shared machine)"
    )
    print_table(
        [
            "config",
            "frames",
            "step ms",
            "collect",
            "forward",
            "backward",
            "adam",
            "GFLOP",
            "GFLOP/s",
            "vs 0.15 s",
        ],
        [
            [
                f"{s['episodes']} x {s['steps']}",
                s["frames"],
                1000 * s["step_s"],
                1000 * s["collect_s"],
                1000 * s["forward_s"],
                1000 * s["backward_s"],
                1000 * s["adam_s"],
                s["gflop"],
                s["gflops_per_s"],
                f"{s['step_s'] / ORIGINAL_STEP_SECONDS:.2f}x",
            ]
            for s in steps
        ],
    )
    dims = [4, 8, 16] if args.quick else [4, 8, 16, 32]
    matrices = [action_matrices(n, repeats) for n in dims]
    print("\nAll action matrices, forward + backward (n actions)")
    print_table(
        [
            "n",
            "actions",
            "givens ms",
            "exp ms",
            "original (here) ms",
            "original (reported) ms",
            "speed-up vs reported",
            "speed-up vs here",
        ],
        [
            [
                m["n"],
                m["actions"],
                m["givens_ms"],
                m["exp_ms"],
                m["original_here_ms"],
                m["original_reported_ms"],
                f"{m['speedup_vs_reported']:.0f}x",
                f"{m['speedup_vs_here']:.0f}x",
            ]
            for m in matrices
        ],
    )
    write_json(
        "learn_throughput",
        {
            "threads": args.threads,
            "quick": args.quick,
            "matmul_gflops": gflops,
            "sgd_step": steps,
            "action_matrices": matrices,
            "original_step_s": ORIGINAL_STEP_SECONDS,
        },
    )


if __name__ == "__main__":
    main()
