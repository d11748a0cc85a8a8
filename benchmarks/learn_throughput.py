"""Training throughput: the SGD step side by side with older code and the original, and action-matrix speed.

1. The SGD step on the original notebook configuration (same network, GridWorld 5x5, latent 4, 3 episodes x
   20 steps) and on the default one (4 x 20), after the warm-up (warm-up of 1 step, dynamics ramp of 1:
   every loss term on), data collection included, as ``Trainer.train_step`` takes it; and (``paper``) the
   notebook configuration with the paper's objective (the ``quessard2020`` method), the loss the original
   computes; and (``instance``) the notebook configuration with ``model.encoder_norm="instance"`` (DynDis codes
   only: the original has no such option). Each code runs in a worker process of its own
   (``benchmarks/_step_worker.py``):

   - this checkout;
   - with ``--baseline-src DIR``, an older checkout (e.g. ``git worktree add /tmp/old COMMIT``), imported
     through ``PYTHONPATH=DIR/packages/*/src``: the code before a refactor, in the same run;
   - the original framework through ``../shared/original/bench.py`` (its notebook configuration, as its
     ``train`` sub-command builds it; one step is one ``train(num_sgd_steps=1)`` call: data and SGD step),
     in its own virtual environment (``--original-python``, default ``.orig-venv/bin/python``; skipped with
     a message where it is missing).

   The workers take turns: in every round each takes one untimed step and then ``--per-round`` timed ones,
   the order rotating from round to round, so that the noise of a shared machine falls on all of them
   alike. Every ratio printed is between figures of this run; none divides by a figure measured elsewhere.
   The losses of the first round show whether two DynDis codes (variants aside) computed the same steps; the
   median minor page faults per step (pages the system maps and zeroes for it) show how each reuses its memory.
2. The parts of DynDis's step (batch, forward, backward, Adam) for each DynDis code, interleaved in rounds
   the same way, and its FLOPs (torch's FlopCounterMode), which give the achieved GFLOP/s next to a
   1024 x 1024 fp32 matmul on the same threads.
3. Every action's matrix, forward + backward, at n = 4, 8, 16, 32 (n actions: n/2 factors), with the batched
   Givens product and with matrix_exp, against the original's way re-implemented here (one action at a
   time, one Givens matrix per plane, in a Python loop) and, where its environment exists, the original's
   own ``Representation`` timed by ``bench.py matrix`` in the same run.

   ``--configs cars3d`` times the whole Cars3D's step with the defaults (DynDis codes only), and ``--bf16``
   DynDis's steps under its bfloat16 autocast (``TrainConfig.bf16``); without it they run in float32, whatever
   ``bf16="auto"`` would choose for the world. ``--variant JSON`` (repeatable) adds a
   worker of this checkout whose ``TrainConfig`` takes those fields too, merged by section (e.g.
   ``'{"model": {"angle_bins": 183}}'``): a change of settings timed against the same code in the same rounds.

Usage: python -m benchmarks.learn_throughput [--quick] [--threads 2] [--baseline-src DIR] [--no-original]
       [--configs NAME ...] [--bf16] [--variant JSON ...]
Targets: the SGD step on the notebook configuration no slower than the baseline's, measured in the same run;
all action matrices at n = 16 >= 50x faster than the original's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import GRIDWORLD, median_seconds, print_table, write_json
from dyndis_learn import TrainConfig
from dyndis_learn.rotations import ActionRotations, n_planes, plane_pairs

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_step_worker.py"
ORIGINAL_BENCH = REPO.parent / "shared" / "original" / "bench.py"
ORIGINAL_PYTHON = REPO / ".orig-venv" / "bin" / "python"
#: The SGD-step configurations: (episodes per step, steps per episode, DynDis's objective, the encoder's
#: normalisation, the environment). ``paper`` is the notebook's configuration with the objective the original
#: trains (``quessard2020``: x_0 alone encoded), the like-for-like comparison; ``notebook`` and ``default`` run
#: DynDis's own, which encodes every frame; ``instance`` is ``notebook`` with ``model.encoder_norm="instance"``;
#: ``cars3d`` is the whole Cars3D with today's defaults (latent 6, the cycles' 1,464 angle bins with their
#: feature maps and modulation, instance norm), the dynamics phase of the large worlds' recipe.
CONFIGS = {
    "notebook": (3, 20, "rotation", "none", GRIDWORLD),
    "default": (4, 20, "rotation", "none", GRIDWORLD),
    "paper": (3, 20, "quessard2020", "none", GRIDWORLD),
    "instance": (3, 20, "rotation", "instance", GRIDWORLD),
    "cars3d": (4, 20, "rotation", "instance", "DynDis/Cars3D-v0"),
}
#: Run by default: the GridWorld configurations (``cars3d`` on request, ``--configs cars3d``: its workers walk
#: the cycles warm-up's 60,000 steps and hold their frames, about 1 GB each).
DEFAULT_CONFIGS = ["notebook", "default", "paper", "instance"]


def matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return 2 * 1024**3 / median_seconds(lambda: a @ b, repeats, warmup=2) / 1e9


# -- the codes under comparison ----------------------------------------------------------------------------


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _revision(root: Path) -> str | None:
    """Short commit of the checkout at ``root``, with ``+dirty`` when its packages have uncommitted changes."""
    commit = _git(root, "rev-parse", "--short", "HEAD")
    if commit and _git(root, "status", "--porcelain", "--", "packages"):
        commit += "+dirty"
    return commit


@dataclass
class Code:
    """One code whose SGD step is timed, and how its worker process is started."""

    label: str
    kind: str  # "dyndis" or "original" (the worker's side)
    python: str
    path: list[str] = field(default_factory=list)  # the worker's PYTHONPATH (it replaces the parent's)
    source: str = ""  # where the code lives (checked against what the worker imported)
    revision: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields of a variant, merged by section


def dyndis_code(label: str, root: Path) -> Code:
    """The DynDis packages of a checkout (``root/packages/*/src``), or of one ``src`` folder."""
    root = root.resolve()
    if (root / "packages").is_dir():
        path = sorted(str(p) for p in (root / "packages").glob("*/src"))
        revision = _revision(root)
    elif (root / "dyndis_learn").is_dir():
        path, revision = [str(root)], None
    else:
        raise SystemExit(f"{root} holds neither packages/*/src nor dyndis_learn/: not a DynDis checkout.")
    if revision:
        label = f"{label} ({revision})"
    return Code(label, "dyndis", sys.executable, path, str(root), revision)


def variant_code(this: Code, text: str) -> Code:
    """This checkout's code with ``TrainConfig`` fields of its own (a JSON object, sections merged)."""
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--variant must be a JSON object of TrainConfig fields, got {text!r}: {error}") from None
    if not isinstance(overrides, dict) or not overrides:
        raise SystemExit(f"--variant must be a non-empty JSON object of TrainConfig fields, got {text!r}")
    try:  # the fields are checked here, before any worker starts
        TrainConfig().replace(**overrides)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"--variant {text}: {error}") from None
    label = f"{this.label} + {json.dumps(overrides, separators=(',', ':'))}"
    return Code(label, "dyndis", this.python, this.path, this.source, this.revision, overrides=overrides)


def original_code(python: Path, bench: Path) -> Code | str:
    """The original framework through ``bench.py``, or the reason it cannot run here."""
    if not bench.is_file():
        return f"no {bench}"
    if not python.exists():
        return (
            f"no {python}: create it as ../shared/original/README.md says (python3 -m venv .orig-venv; "
            ".orig-venv/bin/pip install torch==2.13.0 numpy matplotlib seaborn pandas scipy h5py pillow)"
        )
    return Code("original", "original", str(python), [], str(bench.parent), env={"DYNDIS_ORIGINAL_BENCH": str(bench)})


class Worker:
    """A ``_step_worker.py`` process for one code and configuration; answers one JSON line per request."""

    def __init__(
        self,
        code: Code,
        episodes: int,
        steps: int,
        threads: int,
        method: str,
        norm: str,
        env_id: str,
        precision: str,
    ) -> None:
        self.code = code
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env.update(code.env, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if code.path:
            env["PYTHONPATH"] = os.pathsep.join(code.path)
        command = [code.python, str(WORKER), code.kind, str(episodes), str(steps), str(threads), method, norm]
        command += [env_id, precision, json.dumps(code.overrides)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker of {self.code.label} stopped (exit code {self.process.wait()}); see stderr")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the worker of {self.code.label}: {answer['error']}")
        return answer

    def ask(self, **request: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self.read()

    def ready(self) -> dict[str, Any]:
        info = self.read()["ready"]
        module = Path(info["module"]).resolve()
        if self.code.kind == "dyndis" and not any(module.is_relative_to(Path(p).resolve()) for p in self.code.path):
            raise RuntimeError(f"the worker of {self.code.label} imported {module}, not the code in {self.code.source}")
        return info

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


# -- 1 and 2: the SGD step ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def sgd_steps(codes: list[Code], config: str, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved timings of one SGD step of every code on one configuration, and DynDis's step's parts."""
    episodes, steps, method, norm, env_id = CONFIGS[config]
    precision = "bf16" if args.bf16 else "fp32"
    if norm != "none" or env_id != GRIDWORLD or args.bf16:  # options of DynDis's alone
        codes = [code for code in codes if code.kind == "dyndis"]
    # the workers build at once
    workers = [Worker(code, episodes, steps, args.threads, method, norm, env_id, precision) for code in codes]
    try:
        infos = {w.code.label: w.ready() for w in workers}
        seconds: dict[str, list[float]] = {w.code.label: [] for w in workers}
        rounds: dict[str, list[float]] = {w.code.label: [] for w in workers}  # each round's median
        faults: dict[str, list[int]] = {w.code.label: [] for w in workers}  # minor page faults per step
        first_losses: dict[str, list[float]] = {}
        for r in range(args.rounds):
            shift = r % len(workers)
            for worker in workers[shift:] + workers[:shift]:
                answer = worker.ask(cmd="steps", n=args.per_round)
                label = worker.code.label
                seconds[label] += answer["seconds"]
                faults[label] += answer["page_faults"]
                rounds[label].append(statistics.median(answer["seconds"]))
                first_losses.setdefault(label, answer["losses"])
        # the parts, interleaved the same way: each round's medians, then their median
        measured: dict[str, list[dict[str, float]]] = {w.code.label: [] for w in workers if w.code.kind == "dyndis"}
        dyndis_workers = [w for w in workers if w.code.kind == "dyndis"]
        for r in range(args.rounds):
            shift = r % len(dyndis_workers)
            for worker in dyndis_workers[shift:] + dyndis_workers[:shift]:
                answer = worker.ask(cmd="parts", repeats=args.parts_repeats, flops=r == 0)
                measured[worker.code.label].append(answer)
        parts = {
            label: {
                **{
                    key: statistics.median(m[key] for m in rows)
                    for key in ("batch_s", "forward_s", "backward_s", "adam_s")
                },
                "gflop": rows[0]["gflop"],
            }
            for label, rows in measured.items()
        }
    finally:
        for worker in workers:
            worker.close()
    this = codes[0].label
    results = []
    for code in codes:
        label, times = code.label, seconds[code.label]
        paired = [a / b for a, b in zip(rounds[this], rounds[label], strict=True)]
        results.append(
            {
                "code": label,
                "kind": code.kind,
                "revision": code.revision,
                "median_s": statistics.median(times),
                "p10_s": percentile(times, 0.1),
                "p90_s": percentile(times, 0.9),
                "timed_steps": len(times),
                "page_faults_median": statistics.median(faults[label]),
                "this_over_it": statistics.median(seconds[this]) / statistics.median(times),
                "paired_round_ratios": paired,
                "overrides": code.overrides,
                "first_round_losses": first_losses[label],
                "parts": parts.get(label),
                "worker": infos[label],
            }
        )
    dyndis = [r for r in results if r["kind"] == "dyndis" and not r["overrides"]]  # a variant computes other steps
    same = all(r["first_round_losses"] == dyndis[0]["first_round_losses"] for r in dyndis)
    return {
        "config": config,
        "episodes": episodes,
        "steps": steps,
        "method": method,
        "encoder_norm": norm,
        "env_id": env_id,
        "precision": precision,
        "frames": episodes * (steps + 1),
        "codes": results,
        "dyndis_losses_compared": [r["code"] for r in dyndis],
        "dyndis_losses_identical": same,
    }


# -- 3: the action matrices --------------------------------------------------------------------------------


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

        results[f"{name}_ms"] = 1000 * median_seconds(all_actions, repeats, warmup=2)
    angles = torch.randn(n_planes(latent_dim), requires_grad=True)

    def one_original() -> None:
        angles.grad = None
        original_action_matrix(angles, latent_dim).sum().backward()

    per_action = 1000 * median_seconds(one_original, max(3, repeats // 4 if latent_dim >= 32 else repeats), warmup=2)
    results["original_way_here_ms"] = per_action * n_actions
    results["speedup_vs_original_way_here"] = results["original_way_here_ms"] / results["givens_ms"]
    return results


def original_matrices(code: Code, dims: list[int], threads: int) -> dict[int, float] | str:
    """Per-action forward + backward ms of the original's ``Representation`` (``bench.py matrix``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "matrix.json"
        bench = code.env["DYNDIS_ORIGINAL_BENCH"]
        command = [
            code.python,
            bench,
            "--threads",
            str(threads),
            "matrix",
            "--dims",
            *map(str, dims),
            "--out",
            str(out),
        ]
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            return f"bench.py matrix failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        rows = json.loads(out.read_text())["results"]
    return {row["dim"]: 1000 * row["fwd_bwd"]["median_s"] for row in rows}


# -- main --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline-src", type=Path, help="an older DynDis checkout (or src folder) to time too")
    parser.add_argument(
        "--original-python",
        type=Path,
        default=ORIGINAL_PYTHON,
        help="python of the original's virtual environment (default .orig-venv/bin/python)",
    )
    parser.add_argument("--original-bench", type=Path, default=ORIGINAL_BENCH, help="the original's bench.py")
    parser.add_argument("--no-original", action="store_true", help="do not time the original framework")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=DEFAULT_CONFIGS)
    parser.add_argument(
        "--bf16", action="store_true", help="DynDis's steps under its bfloat16 autocast (TrainConfig.bf16; DynDis only)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="JSON",
        help="this checkout with TrainConfig fields of its own (JSON, sections merged), timed beside it",
    )
    parser.add_argument("--rounds", type=int, help="rounds of interleaved steps (default 10; 2 with --quick)")
    parser.add_argument("--per-round", type=int, help="timed steps per code and round (default 4; 3 with --quick)")
    parser.add_argument("--no-matrices", action="store_true", help="skip the action-matrix timings")
    args = parser.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 10)
    args.per_round = args.per_round or (3 if args.quick else 4)
    args.parts_repeats = 2 if args.quick else 3
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 15

    codes = [dyndis_code("this checkout", REPO)]
    codes += [variant_code(codes[0], text) for text in args.variant]  # checked before any worker starts
    if args.baseline_src:
        codes.append(dyndis_code("baseline", args.baseline_src))
    original: Code | str = (
        "--no-original" if args.no_original else original_code(args.original_python, args.original_bench)
    )
    if isinstance(original, Code):
        codes.append(original)
    else:
        print(f"the original framework is not timed: {original}")

    gflops = matmul_gflops(repeats)
    steps = []
    for config in args.configs:
        print(f"timing the SGD step, {config} configuration ({', '.join(c.label for c in codes)}) ...", flush=True)
        steps.append(sgd_steps(codes, config, args))

    print(
        f"\nOne SGD step, data included ({args.threads} threads, {'bfloat16 autocast' if args.bf16 else 'float32'}; "
        f"median of {args.rounds} x {args.per_round} steps per code, interleaved; shared machine)"
    )
    print_table(
        [
            "config",
            "frames",
            "code",
            "step ms",
            "p10 ms",
            "p90 ms",
            "this / it",
            "paired rounds: this / it",
            "page faults",
        ],
        [
            [
                f"{s['config']} ({s['episodes']} x {s['steps']})",
                s["frames"],
                c["code"],
                1000 * c["median_s"],
                1000 * c["p10_s"],
                1000 * c["p90_s"],
                f"{c['this_over_it']:.3f}",
                f"{statistics.median(c['paired_round_ratios']):.3f} "
                f"({min(c['paired_round_ratios']):.2f}-{max(c['paired_round_ratios']):.2f})",
                round(c["page_faults_median"]),
            ]
            for s in steps
            for c in s["codes"]
        ],
    )
    for s in steps:
        dyndis = s["dyndis_losses_compared"]
        if len(dyndis) > 1:
            same = "identical" if s["dyndis_losses_identical"] else "DIFFERENT (the codes do not compute the same step)"
            print(f"{s['config']}: losses of the first round's steps of {' and '.join(dyndis)}: {same}")

    print(f"\nParts of DynDis's SGD step (1024x1024 fp32 matmul here: {gflops:.0f} GFLOP/s)")
    print_table(
        ["config", "code", "batch ms", "forward ms", "backward ms", "adam ms", "GFLOP", "GFLOP/s"],
        [
            [
                f"{s['config']} ({s['episodes']} x {s['steps']})",
                c["code"],
                1000 * c["parts"]["batch_s"],
                1000 * c["parts"]["forward_s"],
                1000 * c["parts"]["backward_s"],
                1000 * c["parts"]["adam_s"],
                c["parts"]["gflop"],
                c["parts"]["gflop"] / c["median_s"],
            ]
            for s in steps
            for c in s["codes"]
            if c["parts"] is not None
        ],
    )

    matrices: list[dict[str, Any]] = []
    original_matrix_note = None
    if not args.no_matrices:
        dims = [4, 8, 16] if args.quick else [4, 8, 16, 32]
        matrices = [action_matrices(n, repeats) for n in dims]
        measured = original_matrices(original, dims, args.threads) if isinstance(original, Code) else original
        if isinstance(measured, str):
            original_matrix_note = measured
            print(f"\nthe original's Representation is not timed: {measured}")
        else:
            for m in matrices:
                m["original_ms"] = measured[m["n"]] * m["actions"]
                m["speedup_vs_original"] = m["original_ms"] / m["givens_ms"]
        print("\nAll action matrices, forward + backward (n actions)")
        print_table(
            [
                "n",
                "actions",
                "givens ms",
                "exp ms",
                "original's way here ms",
                "original ms",
                "speed-up vs original",
                "speed-up vs original's way here",
            ],
            [
                [
                    m["n"],
                    m["actions"],
                    m["givens_ms"],
                    m["exp_ms"],
                    m["original_way_here_ms"],
                    m.get("original_ms", "-"),
                    f"{m['speedup_vs_original']:.0f}x" if "speedup_vs_original" in m else "-",
                    f"{m['speedup_vs_original_way_here']:.0f}x",
                ]
                for m in matrices
            ],
        )
    path = write_json(
        "learn_throughput",
        {
            "threads": args.threads,
            "quick": args.quick,
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.learn_throughput", *sys.argv[1:]]),
            "rounds": args.rounds,
            "per_round": args.per_round,
            "codes": [{"label": c.label, "kind": c.kind, "source": c.source, "revision": c.revision} for c in codes],
            "original_skipped": None if isinstance(original, Code) else original,
            "matmul_gflops": gflops,
            "sgd_step": steps,
            "action_matrices": matrices,
            "original_matrices_skipped": original_matrix_note,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
