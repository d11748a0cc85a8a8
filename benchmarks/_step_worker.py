"""A worker process that times SGD steps on request, for ``learn_throughput`` (not a benchmark of its own).

Run as ``python benchmarks/_step_worker.py SIDE EPISODES STEPS THREADS [METHOD [NORM [ENV_ID [PRECISION
[OVERRIDES]]]]]`` by ``benchmarks/learn_throughput.py`` with a ``PYTHONPATH`` that chooses the code it imports:
``dyndis`` (whatever ``dyndis_learn`` is first on the path: this checkout, or an older one given by
``--baseline-src``) or ``original`` (the original framework, through ``../shared/original/bench.py``, in its own
virtual environment). ``METHOD`` is DynDis's objective: ``rotation`` (the default) or ``quessard2020`` (the
paper's, the one the original trains); ``NORM`` the encoder's normalisation; ``ENV_ID`` the environment (default
GridWorld 5 x 5; another takes the defaults' choices for it, e.g. Cars3D's angle bins); ``PRECISION`` ``fp32``
or ``bf16`` (``TrainConfig.bf16``); ``OVERRIDES`` a JSON object of ``TrainConfig`` fields merged into the
worker's by section (``TrainConfig.replace``; ``{}`` for none). The same file serves both ``dyndis_learn`` config
layouts (the flat one before the sections, and the nested one), so that the two sides time the same thing in the
same way.

Protocol: one JSON object per line. The worker builds its trainer, takes ``WARMUP_STEPS`` untimed steps and
answers ``{"ready": ...}``; then, per request line on stdin:

- ``{"cmd": "steps", "n": N}``: one untimed step (after another process used the cores), then ``N`` timed
  ``train_step`` calls; answers ``{"seconds": [...], "losses": [...], "page_faults": [...]}`` (the minor page
  faults of each step: pages the system had to map and zero for it);
- ``{"cmd": "parts", "repeats": R, "flops": F}`` (``dyndis`` only): the parts of one step (batch, forward,
  backward, Adam), each the median of ``R`` repeats, and with ``F`` its FLOPs;
- ``{"cmd": "quit"}``.

Its own output goes to stderr; the answers go to the stdout it was started with.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from _common import GRIDWORLD, median_seconds  # the worker runs as a script: its folder is on sys.path

#: Untimed steps after building the trainer (the first steps allocate and fill caches).
WARMUP_STEPS = 3


class DynDisSide:
    """A ``dyndis_learn`` trainer in the dynamics phase: graph warm-up of 1 step, dynamics ramp of 1 step.

    From step 1 on every term of the objective is on, as in a default run after its warm-up (the graph's map
    and its target term included). With the ``quessard2020`` method: no warm-up, the paper's loss from the
    first step. One warm-up step rather than none: with none, the code before the config's
    sections computed step 0's rotations before setting the angles to the graph's fit and the later code
    after, so their steps would differ from then on; with one, both compute the same steps.
    """

    def __init__(
        self,
        episodes: int,
        steps: int,
        threads: int,
        method: str = "rotation",
        encoder_norm: str = "none",
        env_id: str = GRIDWORLD,
        bf16: bool = False,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        import torch

        import dyndis_learn
        from dyndis_learn import TrainConfig, Trainer

        names = {f.name for f in dataclasses.fields(TrainConfig)}
        self.layout = "nested" if "env" in names else "flat"
        if self.layout == "nested":
            # the paper's objective has no warm-up (its loss from the first step); ours one step, see above
            warmup = {"kind": "none"} if method == "quessard2020" else {"steps": 1}
            fields: dict[str, Any] = {
                "env": {"id": env_id},
                "data": {"episodes_per_step": episodes, "episode_steps": steps},
                "model": {"method": method, "encoder_norm": encoder_norm},
                "warmup": warmup,
                "optim": {"dynamics_ramp_steps": 1},
                "threads": threads,
            }
            if bf16 or "bf16" in names:  # codes from before the option do not know the field (float32 there)
                fields["bf16"] = bf16  # never "auto": the precision is the benchmark's argument
            config = TrainConfig.from_dict(fields)
            if overrides:  # sections merged: {"model": {"angle_bins": 183}} keeps the other model fields
                config = config.replace(**overrides)
        elif method != "rotation" or encoder_norm != "none" or env_id != GRIDWORLD or bf16 or overrides:
            raise ValueError("a DynDis code before the config's sections times GridWorld's plain float32 steps only")
        else:  # before the config had sections (format 1)
            config = TrainConfig(
                episodes_per_step=episodes,
                episode_steps=steps,
                warmup_steps=1,
                dynamics_ramp_steps=1,
                threads=threads,
            )
        self.torch = torch
        self.bf16 = bf16
        self.trainer = Trainer(config)
        self.info = {
            "module": str(Path(dyndis_learn.__file__).parent),
            "version": getattr(dyndis_learn, "__version__", None),
            "config_layout": self.layout,
            "config": config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config),
        }

    def step(self) -> float:
        return float(self.trainer.train_step()["loss"].detach())

    def batch(self, step: int) -> Any:
        """The data of ``step`` (episodes collected; with the decoding choice where the trainer draws it)."""
        return self.trainer.batch(step)

    def loss(self, batch: Any, step: int) -> Any:
        """Everything from the batch to the total loss (the graph map's targets included on both layouts)."""
        trainer = self.trainer
        if self.layout == "flat":
            return trainer.losses(batch, step)["loss"]
        weights = trainer.loss_weights(step)
        targets = trainer.warmup.targets(batch.frames.numpy())
        with self.torch.autocast("cpu", dtype=self.torch.bfloat16, enabled=self.bf16):  # as train_step's
            return trainer.method.terms(trainer.model, batch, weights, targets)["loss"]

    def parts(self, repeats: int, flops: bool) -> dict[str, float]:
        """Median seconds of the parts of the next step (each part repeated on the same batch), and its FLOPs."""
        from torch.utils.flop_counter import FlopCounterMode

        trainer, step = self.trainer, self.trainer.step
        batch = self.batch(step)
        collect = median_seconds(lambda: self.batch(step), repeats)
        forward = median_seconds(lambda: self.loss(batch, step), repeats)

        def forward_backward() -> None:
            trainer.optimizer.zero_grad(set_to_none=True)
            self.loss(batch, step).backward()

        backward = median_seconds(forward_backward, repeats) - forward
        adam = median_seconds(trainer.optimizer.step, repeats)
        parts = {"batch_s": collect, "forward_s": forward, "backward_s": backward, "adam_s": adam}
        if flops:
            with FlopCounterMode(display=False) as counter:
                forward_backward()
            parts["gflop"] = counter.get_total_flops() / 1e9
        return parts


class _Built(Exception):
    """Raised from inside ``bench.py train`` once it has built its learner (to take it over from there)."""

    def __init__(self, learner: Any) -> None:
        super().__init__("built")
        self.learner = learner


class OriginalSide:
    """The original framework's learner, built exactly as ``bench.py train`` builds it (its shims applied).

    ``bench.py``'s ``cmd_train`` is called and stopped as soon as its learner exists, so that the notebook's
    configuration comes from ``bench.py`` itself; only the episodes per SGD step are changed (for the 4 x 20
    comparison). A step is one ``train(num_sgd_steps=1)`` call, as ``bench.py`` times it: data and SGD step.
    """

    def __init__(self, episodes: int, steps: int, threads: int) -> None:
        bench_path = Path(os.environ["DYNDIS_ORIGINAL_BENCH"])
        spec = importlib.util.spec_from_file_location("original_bench", bench_path)
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        bench.apply_patches()
        import torch

        learners = importlib.import_module("src.learners")  # the original's package (on the path now)

        base = learners.DynamicRepresentationLearner

        class Intercept(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["num_parallel_episodes"] = episodes
                kwargs["episode_length"] = steps
                super().__init__(*args, **kwargs)
                raise _Built(self)

        self.out = tempfile.mkdtemp(prefix="original-train-")
        args = type(
            "Args",
            (),
            {"threads": threads, "seed": 0, "steps": 0, "random_resets": False, "time_limit": 0, "out": self.out},
        )()
        learners.DynamicRepresentationLearner = Intercept
        try:
            bench.cmd_train(args)
        except _Built as built:
            self.learner = built.learner
        else:
            raise RuntimeError("bench.py train did not build a DynamicRepresentationLearner")
        finally:
            learners.DynamicRepresentationLearner = base
        torch.set_num_threads(threads)
        self.info = {
            "module": str(Path(learners.__file__).parent),
            "bench": str(bench_path),
            "patches": list(bench.PATCHES),
        }

    def step(self) -> float:
        self.learner.train(num_sgd_steps=1, log_freq=10**9)
        return float(self.learner.losses[-1])


def main() -> None:
    side_name, episodes, steps, threads = sys.argv[1], *map(int, sys.argv[2:5])
    method = sys.argv[5] if len(sys.argv) > 5 else "rotation"
    encoder_norm = sys.argv[6] if len(sys.argv) > 6 else "none"
    env_id = sys.argv[7] if len(sys.argv) > 7 else GRIDWORLD
    bf16 = len(sys.argv) > 8 and sys.argv[8] == "bf16"
    overrides = json.loads(sys.argv[9]) if len(sys.argv) > 9 else {}
    # the encoder is far from the graph's map after one warm-up step, as expected here
    warnings.filterwarnings("ignore", message="The encoder ended the graph warm-up")
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed by the code under test goes to stderr
    sys.stdout = sys.stderr
    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    if side_name == "dyndis":
        side: DynDisSide | OriginalSide = DynDisSide(
            episodes, steps, threads, method, encoder_norm, env_id, bf16, overrides
        )
    else:
        side = OriginalSide(episodes, steps, threads)
    for _ in range(WARMUP_STEPS):
        side.step()
    info = {
        **side.info,
        "build_s": time.perf_counter() - started,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    answers.write(json.dumps({"ready": info}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "quit":
            break
        if request["cmd"] == "steps":
            side.step()
            seconds, losses, faults = [], [], []
            for _ in range(request["n"]):
                faulted = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                losses.append(side.step())
                seconds.append(time.perf_counter() - start)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faulted)
            answers.write(json.dumps({"seconds": seconds, "losses": losses, "page_faults": faults}) + "\n")
        elif request["cmd"] == "parts":
            answers.write(json.dumps(side.parts(request["repeats"], request.get("flops", False))) + "\n")
        else:
            answers.write(json.dumps({"error": f"unknown command {request['cmd']!r}"}) + "\n")


if __name__ == "__main__":
    main()
