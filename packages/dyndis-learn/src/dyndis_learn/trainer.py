"""The training loop: take a batch, compute the objective, take one Adam step, log, checkpoint.

One SGD step, top to bottom (:meth:`Trainer.train_step`):

1. Set every parameter group's learning rate from the schedules (:mod:`dyndis_learn.schedules`).
2. The step's loss weights: the configured weights with the dynamics ramp and the regulariser's
   schedule applied, then the warm-up's own terms (:mod:`dyndis_learn.warmups`).
3. The step's batch: the warm-up's own during a warm-up that has one, else fresh episodes from random
   starts (batch number = step, so the data of a step never depends on the history: exact resume needs no
   replay) with the frames to decode from the rollout drawn for the step. Batches are built on the CPU
   (from NumPy) and moved to the trainer's device (``TrainConfig.device``) once per step.
4. On the first step after the warm-up, the warm-up's end (e.g. align the planes).
5. Every loss term and their weighted sum (:mod:`dyndis_learn.objective`, through the method), one Adam step.

The parts are objects chosen once, when the trainer is built: the method (:mod:`dyndis_learn.methods`)
builds the model and computes the terms, the warm-up owns its data and hooks, the schedules give the
per-step factors, the run log writes the rows (:mod:`dyndis_learn.run_log`), and
:mod:`dyndis_learn.checkpoint` holds the checkpoint layout.

Built while a ``torch.distributed`` process group of several ranks is up (under torchrun), the trainer is
one rank of a data-parallel run (:mod:`dyndis_learn.distributed`): its episodes come from the rank's seed,
DDP averages the gradients, the warm-up starts on rank 0, and only rank 0 writes files. Without one it is
the single-process trainer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dyndis_learn import distributed
from dyndis_learn.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    Checkpoint,
    CheckpointError,
    load_model_state,
    optimizer_state_from_tensors,
    read_checkpoint,
    write_checkpoint,
)
from dyndis_learn.config import TrainConfig
from dyndis_learn.devices import computes_bf16, flush_subnormals, resolve_device, retain_freed_memory
from dyndis_learn.files import remove_stale_temporaries, write_json_atomic
from dyndis_learn.limits import check_threads
from dyndis_learn.methods import make_method
from dyndis_learn.objective import TERMS, LossWeights, TrainBatch, decoding_choice
from dyndis_learn.rollouts import Policy, RolloutCollector
from dyndis_learn.run_log import LOG_COLUMNS, RunLog
from dyndis_learn.schedules import Schedules
from dyndis_learn.validation import check_int
from dyndis_learn.warmups import make_warmup

__all__ = ["Trainer", "checkpoint_config"]

#: Entropy tag of the random choice of the frames decoded from the rollout (actions use the collectors'
#: own streams, the graph warm-up its own tags).
_DECODING_STREAM = 2


class Trainer:
    """Trains a world model on episodes of a Gymnasium environment.

    Args:
        config: The run's recipe.
        run_dir: Folder for the CSV log, TensorBoard events, ``config.json`` and checkpoints; None keeps
            everything in memory.
        policy: Optional behaviour policy for the training episodes (uniformly random by default).
        cap_threads: What to do when ``config.threads`` exceeds this machine's :func:`thread_limit`: False
            refuses it (ValueError), True runs with the limit instead, with a warning (how a run restored
            from a checkpoint of a larger machine still loads).

    Attributes:
        config: The run's recipe with its ``"auto"`` settings made numbers (:meth:`Warmup.resolve
            <dyndis_learn.warmups.Warmup.resolve>`): what ``config.json`` and the checkpoints store.
        device: Where the model trains (``config.device`` resolved on this machine and rank).
        ranks: This process's place among data-parallel ranks (rank 0 of 1 without a process group).
        data_seed: Seed of this rank's episodes, decoded frames and warm-up batches (``config.seed`` on rank 0,
            :func:`~dyndis_learn.distributed.rank_seed`).
        model: The world model being trained (on ``device``).
        method: The method that built it and computes its loss terms.
        warmup: The warm-up.
        schedules: The per-step learning rates and weights.
        collector: The training episodes' source.
        step: Number of SGD steps taken so far.
        history: One dict per logged step (the columns of :data:`~dyndis_learn.run_log.LOG_COLUMNS`).
        train_seconds: Wall time spent in SGD steps (not in logging, checkpoints or callbacks).
        checkpoint_world_size: Ranks that trained the checkpoint this trainer was loaded from, until
            :meth:`train` has compared them with its own (:func:`~dyndis_learn.distributed.check_resumed_world_size`);
            None for a fresh trainer.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        policy: Policy | None = None,
        *,
        cap_threads: bool = False,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"`config` must be a TrainConfig, got {type(config).__name__}.")
        self.ranks = distributed.ranks()
        self.device = distributed.local_device(resolve_device(config.device), self.ranks)
        # This rank's data streams (episodes, decoded frames, warm-up batches): the run's own on rank 0.
        self.data_seed = distributed.rank_seed(config.seed, self.ranks.rank)
        data_config = config if self.ranks.rank == 0 else config.replace(seed=self.data_seed)
        self.run_dir = None if run_dir is None else Path(run_dir)
        if config.threads:
            torch.set_num_threads(check_threads(config.threads, cap_threads))
        if self.device.type == "cpu":
            flush_subnormals()
            if config.retain_cpu_memory:
                retain_freed_memory()
        torch.manual_seed(config.seed)  # the networks' initial weights
        self.collector = RolloutCollector(
            config.env.id,
            config.data.episodes_per_step,
            config.data.episode_steps,
            self.data_seed,
            config.env.kwargs,
            policy,
        )
        self.warmup = make_warmup(data_config, policy)
        # "auto" settings read from the world; every rank finds the same (they are facts of the world)
        config = self.warmup.resolve(config)
        if config.bf16 == "auto":  # a warm-up that does not read the world's size: float32, as on small worlds
            config = config.replace(bf16=False)
        self.config = config
        if config.bf16 and self.device.type == "cpu" and not computes_bf16(self.device):
            warnings.warn(
                "TrainConfig.bf16 is True, but this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): it "
                "emulates them, about 10x slower than float32. Set bf16 to 'auto' or False for a new run.",
                stacklevel=2,
            )
        self.method = make_method(config.built_model)
        self.model = self.method.build_model(
            self.collector.image_shape,
            self.collector.n_actions,
            config.built_model,
            torch.Generator().manual_seed(config.seed),
        ).to(self.device)  # built on the CPU (the same initial weights on every device), then moved
        self.method.prepare(self.model, config, self.collector.env)
        self.schedules = Schedules.from_config(config, self.warmup.steps, self.warmup.default_angle_lr)
        self.optimizer = torch.optim.Adam(
            [
                {"params": params, "lr": self.schedules.learning_rate(part, 0), "name": part}
                for part, params in self.method.parameter_groups(self.model)
            ],
            betas=(0.9, config.optim.adam_beta2),
            fused=True,  # one pass over each parameter's tensors, where the per-tensor loop makes several
        )
        self._terms = distributed.objective(self.model, self.method, self.ranks)  # under DDP with several ranks
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self.checkpoint_world_size: int | None = None
        self._started = False

    # -- one SGD step ----------------------------------------------------------------------------------

    def _start(self) -> None:
        """Run the warm-up's start hook once, before this trainer's first step (or batch)."""
        if not self._started:
            distributed.start_warmup(self.warmup, self.model, self.step, self.ranks)
            self._started = True

    def seen_states(self) -> np.ndarray | None:
        """The true states (value indices, shape (S, F)) of the frames training used, or None where unknown.

        For evaluation only (fidelity on seen against unseen states). Known where the warm-up gives every
        step's data and keeps its frames' ``info["factors"]``: the cycles warm-up's walk. A trainer that has
        taken steps without starting its warm-up in this process (loaded from a checkpoint) starts it now,
        which walks the same walk again: it is a function of the config.
        """
        if self.step > 0:
            self._start()
        return self.warmup.seen_states()

    def loss_weights(self, step: int) -> LossWeights:
        """The weight of every loss term at ``step``: configured weights, schedules, then the warm-up's terms."""
        loss, reg = self.config.loss, self.config.regularizer
        ramp = self.schedules.dynamics_weight(step)
        weights = LossWeights(
            autoencoder=loss.autoencoder_weight,
            rollout=ramp * loss.rollout_weight,
            neighbour_margin=ramp * loss.neighbour_margin_weight,
            consistency=ramp * loss.consistency_weight,
            uniformity=loss.uniformity_weight,
            regularizer=self.schedules.regularizer_weight(step),
            multistep=loss.multistep_weight,
            margin=loss.neighbour_margin,
            uniformity_temperature=loss.uniformity_temperature,
            regularizer_target=reg.target,
            regularizer_value=reg.value,
        )
        return self.warmup.weights(weights, step, self.schedules)

    def batch(self, step: int, weights: LossWeights | None = None) -> TrainBatch:
        """The data of SGD step ``step``: the same batch every time it is asked for.

        The warm-up's own frames and actions where it has them, else batch number ``step`` of the training
        episodes, with the frames to decode from the rollout drawn for ``step`` once the rollout term has weight.
        """
        self._start()
        weights = self.loss_weights(step) if weights is None else weights
        own = self.warmup.batch(step)
        if own is not None:
            frames, actions = own.frames, own.actions
        else:
            episodes = self.collector.collect(step)
            frames, actions = torch.from_numpy(episodes.observations), torch.from_numpy(episodes.actions)
        if weights.rollout == 0 or actions.shape[1] == 0:
            return TrainBatch(frames, actions)
        split = self.config.loss.split_decoding
        choice = decoding_choice(*actions.shape, split=split, seed=self.data_seed, step=step, stream=_DECODING_STREAM)
        return TrainBatch(frames, actions, choice, decode_twice=not split)

    def train_step(self) -> dict[str, torch.Tensor]:
        """Take SGD step number ``step`` (see the module docstring) and advance ``step``; returns the terms."""
        self._start()
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedules.learning_rate(group["name"], self.step)
        self.model.train()
        weights = self.loss_weights(self.step)
        host = self.batch(self.step, weights)  # on the CPU
        batch = _to_device(host, self.device)
        if self.step == self.warmup.steps:
            self.warmup.end(self.model, batch, self.optimizer)
            distributed.broadcast_module(self.model, self.ranks)  # rank 0's end (e.g. its fitted planes) for all
        targets = self.warmup.targets(host.frames.numpy())
        if targets is not None:
            encodings, states = targets.encodings.to(self.device), targets.states.to(self.device)
            targets = targets._replace(encodings=encodings, states=states)
        with _autocast(self.device, self.config.bf16):
            terms = self._terms(batch, weights, targets)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        self.step += 1
        return terms

    # -- the loop --------------------------------------------------------------------------------------

    def train(
        self,
        steps: int | None = None,
        *,
        progress: bool = True,
        callback: Callable[[Trainer], None] | None = None,
        callback_every: int = 0,
    ) -> list[dict[str, float]]:
        """Train until ``steps`` SGD steps in total have been taken (default ``config.steps``).

        Args:
            steps: Total number of steps to reach (a resumed trainer continues from ``self.step``).
            progress: Show a tqdm progress bar with the live losses.
            callback: Called as ``callback(trainer)`` every ``callback_every`` steps (e.g. an evaluation);
                its time is not counted in ``train_seconds``. Under data parallelism, on every rank.
            callback_every: Period of ``callback`` in steps (0: never).

        Returns:
            The training history (one dict per logged step).

        Raises:
            ValueError: If ``steps`` is below the step the trainer is at (``steps`` is the total to reach,
                not the number of steps to add). Without ``steps``, a trainer already past ``config.steps``
                (a run extended beyond it) trains nothing.
        """
        if steps is None:
            total = max(self.config.steps, self.step)
        else:
            total = check_int("steps", steps, minimum=1)
            if total < self.step:
                raise ValueError(
                    f"The run is already at step {self.step}, beyond the requested total of {total} steps "
                    f"(steps is the total to reach, not the number to add): ask for {self.step} or more."
                )
        logging = self.config.logging
        distributed.check_resumed_world_size(self.checkpoint_world_size, self.ranks)
        self.checkpoint_world_size = None
        out = self.run_dir if self.ranks.is_main else None  # only rank 0 writes files
        if out is not None:
            write_json_atomic(out / CONFIG_NAME, self.config.to_dict())
        progress = progress and self.ranks.is_main
        log = RunLog(out, self.history, total, self.step, tensorboard=logging.tensorboard, progress=progress)
        with log:
            while self.step < total:
                started = time.perf_counter()
                terms = self.train_step()
                self.train_seconds += time.perf_counter() - started
                if self.step % logging.log_every == 0 or self.step == total:
                    log.write(self._log_row(distributed.mean_over_ranks(terms, self.ranks)), TERMS)
                log.step()
                every = logging.checkpoint_every
                if out is not None and every and self.step % every == 0 and self.step < total:
                    self.save(out / CHECKPOINT_NAME)
                if callback is not None and callback_every and self.step % callback_every == 0:
                    callback(self)
        if out is not None:
            self.save(out / CHECKPOINT_NAME)
        if self.run_dir is not None:
            distributed.barrier(self.ranks)  # every rank returns once rank 0's checkpoint is written
        return self.history

    def _log_row(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """The history row of the step just taken (its terms, and the schedules' values at that step)."""
        taken = self.step - 1
        share = self.method.plane_share(self.model)
        row: dict[str, float] = {
            "step": self.step,
            "wall_time": round(self.train_seconds, 4),
            **{name: float(value.detach()) for name, value in terms.items()},
            "regularizer_weight": self.schedules.regularizer_weight(taken),
            "dynamics_weight": self.schedules.dynamics_weight(taken),
            "lr": self.schedules.learning_rate("encoder", taken),
            "angle_lr": self.schedules.learning_rate("angles", taken),
            "min_plane_share": share,
        }
        row = {column: row[column] for column in LOG_COLUMNS}
        self.history.append(row)
        return row

    # -- checkpoints -----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (model, optimiser, RNG, step, history, config, ranks) atomically to ``path``.

        Under data parallelism every rank holds the same state: call it on rank 0 only.
        """
        return write_checkpoint(
            path,
            self.model,
            self.optimizer,
            config=self.config.to_dict(),
            step=self.step,
            train_seconds=self.train_seconds,
            history=self.history,
            image_shape=self.model.image_shape,
            n_actions=self.model.n_actions,
            world_size=self.ranks.world_size,
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        run_dir: str | Path | None = None,
        policy: Policy | None = None,
        *,
        device: str | None = None,
    ) -> Trainer:
        """Rebuild a trainer from a checkpoint, ready to continue training exactly where it stopped.

        The checkpoint's tensors are read on the CPU and moved to the trainer's device: the stored
        ``config.device``, or ``device`` where given (which then replaces it in the run's config: a run
        trained on a GPU continues on the CPU with ``device="cpu"``).

        Every parameter stays trainable and is registered with the restored optimiser. With a ``run_dir``
        (the run continues there), the stale temporary files of interrupted saves of ``path`` are removed
        (:func:`~dyndis_learn.files.remove_stale_temporaries`), and a ``config.json`` already in ``run_dir``
        must agree with the checkpoint's config.

        Raises:
            FileNotFoundError: If there is no file at ``path``.
            CheckpointError: If the checkpoint is unreadable, corrupted or incomplete, its stored config is
                invalid or does not match its tensors, the environment no longer gives the images and
                actions it was trained on, or ``run_dir``'s ``config.json`` differs from its config.
        """
        checkpoint = read_checkpoint(path)
        config = checkpoint_config(checkpoint)
        if run_dir is not None:
            if distributed.ranks().is_main:  # the rank that writes the run's files
                remove_stale_temporaries(path)
            _check_run_config(Path(run_dir) / CONFIG_NAME, config, checkpoint)
        if device is not None:
            config = config.replace(device=device)
        trainer = cls(config, run_dir, policy, cap_threads=True)
        collector = trainer.collector
        if (collector.image_shape, collector.n_actions) != (checkpoint.image_shape, checkpoint.n_actions):
            trainer.close()
            raise CheckpointError(
                f"checkpoint {checkpoint.path!r}: the environment {config.env.id!r} with kwargs {config.env.kwargs} "
                f"now gives images of shape {collector.image_shape} and {collector.n_actions} actions, but the "
                f"model was trained on {checkpoint.image_shape} and {checkpoint.n_actions}."
            )
        try:
            load_model_state(trainer.model, checkpoint, dataclasses.asdict(config.built_model))
        except CheckpointError:
            trainer.close()
            raise
        try:
            optimizer_state_from_tensors(trainer.optimizer, checkpoint.optimizer_tensors, checkpoint.optimizer_meta)
        except CheckpointError as exc:
            trainer.close()
            raise CheckpointError(f"checkpoint {checkpoint.path!r}: {exc}") from exc
        if checkpoint.rng_state is not None:
            torch.set_rng_state(checkpoint.rng_state)
        if checkpoint.cuda_rng_state is not None and trainer.device.type == "cuda":
            states = list(checkpoint.cuda_rng_state)[: torch.cuda.device_count()]
            torch.cuda.set_rng_state_all(states)
        trainer.step = checkpoint.step
        trainer.train_seconds = checkpoint.train_seconds
        trainer.history = checkpoint.history
        trainer.checkpoint_world_size = checkpoint.world_size
        return trainer

    @classmethod
    def resume(cls, run_dir: str | Path, policy: Policy | None = None, *, device: str | None = None) -> Trainer:
        """Continue the run in ``run_dir`` from its checkpoint (on ``device`` where given, see :meth:`load`)."""
        return cls.load(Path(run_dir) / CHECKPOINT_NAME, run_dir, policy, device=device)

    def close(self) -> None:
        """Close the environments."""
        self.collector.close()
        self.warmup.close()


def _to_device(batch: TrainBatch, device: torch.device) -> TrainBatch:
    """``batch`` with its tensors on ``device`` (the same batch where it is already there)."""
    if batch.frames.device == device:
        return batch
    choice = batch.from_rollout
    return batch._replace(
        frames=batch.frames.to(device),
        actions=batch.actions.to(device),
        from_rollout=None if choice is None else choice.to(device),
    )


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on ``device`` where ``bf16`` asks for it, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def checkpoint_config(checkpoint: Checkpoint) -> TrainConfig:
    """The :class:`TrainConfig` stored in ``checkpoint`` (older layouts migrated).

    Raises:
        CheckpointError: If the stored config is not a valid configuration, naming the file.
    """
    try:
        return TrainConfig.from_dict(checkpoint.config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {checkpoint.path!r}: its stored config is invalid: {exc}") from exc


def _check_run_config(path: Path, config: TrainConfig, checkpoint: Checkpoint) -> None:
    """Refuse to continue a run whose ``config.json`` says another config than its checkpoint."""
    if not path.is_file():
        return
    try:
        stored = TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))).to_dict()
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"run folder {str(path.parent)!r}: its {path.name} is not a valid config ({exc}); it should hold "
            f"the config of checkpoint {checkpoint.path!r}."
        ) from exc
    differing = _differences(stored, config.to_dict())
    if differing:
        shown = "; ".join(f"{key}: {path.name} has {a!r}, the checkpoint {b!r}" for key, a, b in differing)
        raise CheckpointError(
            f"run folder {str(path.parent)!r}: {path.name} disagrees with the checkpoint's config ({shown}). "
            f"A run continues with the config it was trained with: restore {path.name} or start a new run."
        )


def _differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, a's value, b's value)`` of every leaf where two config dicts differ."""
    found = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, Mapping) and isinstance(y, Mapping) and key != "kwargs":
            found += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            found.append((f"{prefix}{key}", x, y))
    return found
