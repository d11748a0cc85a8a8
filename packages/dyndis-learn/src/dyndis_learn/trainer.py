"""The training loop: collect fresh episodes, take one Adam step on the objective, log, checkpoint.

One SGD step, top to bottom (see :mod:`dyndis_learn.losses` for the terms):

1. Collect the step's episodes from fresh random starts (batch number = step, so the data of a step never
   depends on the history: exact resume needs no replay).
2. Encode every frame onto the sphere: ``e_t`` (one batched encoder pass).
3. Rotations: step matrices ``R_t`` and path matrices ``P_t`` from all actions' matrices, built once.
4. Decode every ``e_t`` (autoencoding) and, after the warm-up, rotated first frames ``P_t e_0`` (the
   rollout loss of the design).
5. Loss = autoencoding BCE + uniformity + ramp * (rollout BCE + latent consistency) + w * regulariser
   (+ smoothness and whitening, fading out, after a spectral warm-up).

The schedule, in two phases:

- Warm-up (``warmup_steps``): the encoder learns a map of the states on which every action is a
  rotation in its own plane (each factor's first Fourier modes), with no angles involved. With the
  default ``warmup="graph"`` the map is computed in closed form first: random episodes explore the
  transition graph, its Laplacian eigenmap is turned onto the actions' common planes and the angles set
  to the fitted rotations (:mod:`dyndis_learn.transition_graph`, :mod:`dyndis_learn.alignment`); each
  warm-up step then regresses the encoder onto that map and trains the decoder on explored states. With
  ``warmup="spectral"`` the encoder finds the map itself by SGD on transition smoothness under whitening
  (many short episodes per batch), and the planes are aligned in closed form at the warm-up's end.
- Dynamics (fewer, long episodes): the rollout and consistency terms and the regulariser ramp in and
  make the rotations exact; in the last part of the run both learning rates decay geometrically, which is
  what makes the angles precise enough for 500-step rollouts.
"""

from __future__ import annotations

import csv
import dataclasses
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dyndis_learn.alignment import fit_planes
from dyndis_learn.checkpoint import (
    load_checkpoint,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    save_checkpoint,
    write_json_atomic,
)
from dyndis_learn.config import TrainConfig
from dyndis_learn.losses import (
    frame_bce,
    latent_consistency,
    transition_smoothness,
    uniformity,
    whitening_penalty,
)
from dyndis_learn.model import WorldModel, frames_to_float
from dyndis_learn.regularizers import dominant_share, entanglement_penalty
from dyndis_learn.rollouts import EpisodeBatch, Policy, RolloutCollector
from dyndis_learn.rotations import cumulative_rotations
from dyndis_learn.transition_graph import TransitionGraph, explore, laplacian_eigenmap

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "LOG_NAME", "Trainer", "model_state"]

#: File names inside a run folder.
CHECKPOINT_NAME = "checkpoint.safetensors"
CONFIG_NAME = "config.json"
LOG_NAME = "train_log.csv"

#: Prefix of the model's tensors in a checkpoint (the optimiser's are ``optim.``, the RNG's ``rng.``).
_MODEL_PREFIX = "model."

#: Entropy tags of the random choice of decoded latents and of the graph warm-up's states (actions use
#: the collectors' own streams).
_DECODING_STREAM = 2
_GRAPH_STREAM = 3

#: Columns of the training log, in order.
LOG_COLUMNS = (
    "step",
    "wall_time",
    "loss",
    "autoencoder_bce",
    "rollout_bce",
    "consistency",
    "smoothness",
    "whitening",
    "target",
    "uniformity",
    "regularizer",
    "regularizer_weight",
    "dynamics_weight",
    "lr",
    "angle_lr",
    "min_plane_share",
)


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The world model's ``state_dict`` among the tensors of a checkpoint written by :meth:`Trainer.save`."""
    return {k.removeprefix(_MODEL_PREFIX): v for k, v in tensors.items() if k.startswith(_MODEL_PREFIX)}


#: Mean squared distance of the encodings to the graph's map above which the warm-up is said to have failed
#: (learned runs end it below 0.01: GridWorld about 1e-6, Shapes3D 0.008; failed ones near 1).
GRAPH_FIT_LIMIT = 0.1


def _warn_if_off_the_map(distance: float) -> None:
    """Warn when the encoder ends the graph warm-up far from the map: the criteria would not show it."""
    if distance > GRAPH_FIT_LIMIT:
        warnings.warn(
            f"The encoder ended the graph warm-up at a mean squared distance of {distance:.3g} from the "
            f"graph's map of the states (limit {GRAPH_FIT_LIMIT}): it has not learned every factor, although "
            "the angles, fitted on the graph, may look exact. Where a factor changes the whole image, try "
            "model={'encoder_norm': 'instance'}; else more warmup_steps.",
            stacklevel=3,
        )


class Trainer:
    """Trains a :class:`~dyndis_learn.model.WorldModel` on episodes of a Gymnasium environment.

    Args:
        config: The run's recipe.
        run_dir: Folder for the CSV log, TensorBoard events, ``config.json`` and checkpoints; None keeps
            everything in memory.
        policy: Optional behaviour policy for the training episodes (uniformly random by default).

    Attributes:
        model: The world model being trained.
        step: Number of SGD steps taken so far.
        history: One dict per logged step (the columns of :data:`LOG_COLUMNS`).
        train_seconds: Wall time spent in SGD steps (not in logging, checkpoints or callbacks).
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path | None = None, policy: Policy | None = None) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"`config` must be a TrainConfig, got {type(config).__name__}.")
        self.config = config
        self.run_dir = None if run_dir is None else Path(run_dir)
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)  # the networks' initial weights
        self.collector = RolloutCollector(
            config.env_id,
            config.episodes_per_step,
            config.episode_steps,
            config.seed,
            config.env_kwargs,
            policy,
        )
        self.policy = policy
        self._warmup_collector: RolloutCollector | None = None  # made when a warm-up batch is first needed
        self._graph_map: tuple[TransitionGraph, torch.Tensor] | None = None  # made when first needed
        self.model = WorldModel(
            self.collector.image_shape,
            self.collector.n_actions,
            **dataclasses.asdict(config.model),
            generator=torch.Generator().manual_seed(config.seed),
        )
        self.optimizer = torch.optim.Adam(
            [
                {"params": list(self.model.encoder.parameters()), "lr": config.lr, "name": "encoder"},
                {"params": list(self.model.decoder.parameters()), "lr": config.lr, "name": "decoder"},
                {"params": [self.model.rotations.angles], "lr": config.angle_lr_value, "name": "angles"},
            ]
        )
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self._writer: Any = None

    # -- one SGD step ----------------------------------------------------------------------------------

    def losses(self, batch: EpisodeBatch, step: int) -> dict[str, torch.Tensor]:
        """Every term of the objective on one batch, and their weighted sum under ``"loss"``."""
        cfg = self.config
        frames = torch.from_numpy(batch.observations)  # (B, T + 1, H, W, C) uint8
        actions = torch.from_numpy(batch.actions)  # (B, T)
        targets = frames_to_float(frames)
        ramp = cfg.dynamics_weight(step)

        encodings = self.model.encode(frames)  # (B, T + 1, n)
        steps = self.model.rotations.matrices()[actions]  # (B, T, n, n)
        paths = cumulative_rotations(steps)  # (B, T + 1, n, n)

        # Which frames t >= 1 are decoded from the rotated first frame P_t e_0 (the rollout loss) rather
        # than from their own encoding e_t (autoencoding). With split decoding each frame is decoded once,
        # from one or the other at random (drawn from the step number: a resumed run draws the same).
        batch_size, n_frames = frames.shape[:2]
        if ramp == 0 or cfg.rollout_weight == 0:
            from_rollout = torch.zeros(batch_size, n_frames - 1, dtype=torch.bool)
        elif cfg.split_decoding:
            coin = np.random.default_rng([cfg.seed, step, _DECODING_STREAM]).random((batch_size, n_frames - 1))
            from_rollout = torch.from_numpy(coin < 0.5)
        else:
            from_rollout = torch.ones(batch_size, n_frames - 1, dtype=torch.bool)
        rolled = (paths[:, 1:] @ encodings[:, :1].unsqueeze(-1)).squeeze(-1)  # P_t e_0, t = 1 .. T
        if cfg.split_decoding or not from_rollout.any():
            latents = torch.cat([encodings[:, :1], torch.where(from_rollout[..., None], rolled, encodings[:, 1:])], 1)
            decoded_targets = targets
            is_rollout = torch.cat([torch.zeros(batch_size, 1, dtype=torch.bool), from_rollout], dim=1)
        else:  # decode every frame twice: from its encoding and from the rollout
            latents = torch.cat([encodings, rolled], dim=1)
            decoded_targets = torch.cat([targets, targets[:, 1:]], dim=1)
            is_rollout = torch.cat([torch.zeros(batch_size, n_frames, dtype=torch.bool), from_rollout], dim=1)
        bce = frame_bce(self.model.decode_logits(latents), decoded_targets)
        target = bce.new_zeros(())
        if cfg.warmup == "graph" and cfg.target_weight > 0:  # keep the encoder on the explored states' map
            graph, state_targets = self.graph_embedding()
            states = torch.from_numpy(graph.state_indices(batch.observations))
            seen = states >= 0
            if seen.any():
                target = (encodings[seen] - state_targets[states[seen]]).square().sum(-1).mean()
        terms = {
            "autoencoder_bce": bce[~is_rollout].mean(),
            "rollout_bce": bce[is_rollout].mean() if is_rollout.any() else bce.new_zeros(()),
            "consistency": (
                latent_consistency(encodings, steps, paths, cfg.multistep_weight) if ramp > 0 else bce.new_zeros(())
            ),
            "smoothness": transition_smoothness(encodings),
            "whitening": whitening_penalty(encodings),
            "target": target,
            "uniformity": uniformity(encodings, cfg.uniformity_temperature),
            "regularizer": entanglement_penalty(
                self.model.rotations.angles, cfg.regularizer.target, cfg.regularizer.value
            ),
        }
        terms["loss"] = (
            cfg.autoencoder_weight * terms["autoencoder_bce"]
            + ramp * (cfg.rollout_weight * terms["rollout_bce"] + cfg.consistency_weight * terms["consistency"])
            + cfg.spectral_scale(step)
            * (cfg.smoothness_weight * terms["smoothness"] + cfg.whitening_weight * terms["whitening"])
            + cfg.uniformity_weight * terms["uniformity"]
            + cfg.target_weight * target
            + cfg.regularizer_weight(step) * terms["regularizer"]
        )
        return terms

    def train_step(self) -> dict[str, torch.Tensor]:
        """Collect batch number ``step``, take one Adam step, advance ``step``; returns the loss terms."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate(group["name"], self.step)
        self.model.train()
        cfg = self.config
        if cfg.warmup == "graph" and self.step < cfg.warmup_steps:
            terms = self.graph_losses(self.step)
            if self.step == cfg.warmup_steps - 1:
                _warn_if_off_the_map(float(terms["target"].detach()))
        else:
            batch = self.batch(self.step)
            if cfg.warmup == "spectral" and cfg.align_planes and self.step == cfg.warmup_steps:
                self.align_planes(batch)
            terms = self.losses(batch, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        self.step += 1
        return terms

    def batch(self, step: int) -> EpisodeBatch:
        """The episodes of SGD step ``step``: the same batch every time it is asked for.

        The steps of a spectral warm-up draw many short episodes (``warmup_episodes_per_step`` x
        ``warmup_episode_steps``), all others fewer long ones (``episodes_per_step`` x ``episode_steps``).
        """
        cfg = self.config
        if cfg.warmup != "spectral" or step >= cfg.warmup_steps:
            self._close_warmup_collector()
            return self.collector.collect(step)
        if self._warmup_collector is None:
            self._warmup_collector = RolloutCollector(
                cfg.env_id,
                cfg.warmup_episodes_per_step,
                cfg.warmup_episode_steps,
                cfg.seed,
                cfg.env_kwargs,
                self.policy,
            )
        return self._warmup_collector.collect(step)

    def _close_warmup_collector(self) -> None:
        if self._warmup_collector is not None:
            self._warmup_collector.close()
            self._warmup_collector = None

    def graph_losses(self, step: int) -> dict[str, torch.Tensor]:
        """The graph warm-up's objective on ``graph_batch_size`` explored states drawn for ``step``.

        Autoencoding BCE plus ``target_weight`` times the squared distance of each encoding to its state's
        target (see :meth:`graph_embedding`); whitening and uniformity are logged, not optimised. After the
        warm-up the same distance, on the frames of the step's episodes, stays in the objective.
        """
        cfg = self.config
        graph, targets = self.graph_embedding()
        rng = np.random.default_rng([cfg.seed, step, _GRAPH_STREAM])
        states = rng.integers(0, graph.n_states, cfg.graph_batch_size)
        frames = torch.from_numpy(graph.images[states])
        encodings = self.model.encode(frames)
        bce = frame_bce(self.model.decode_logits(encodings), frames_to_float(frames)).mean()
        zero = bce.new_zeros(())
        terms = {
            "autoencoder_bce": bce,
            "rollout_bce": zero,
            "consistency": zero,
            "smoothness": zero,
            "whitening": whitening_penalty(encodings),
            "target": (encodings - targets[states]).square().sum(-1).mean(),
            "uniformity": uniformity(encodings, cfg.uniformity_temperature),
            "regularizer": entanglement_penalty(
                self.model.rotations.angles, cfg.regularizer.target, cfg.regularizer.value
            ),
        }
        terms["loss"] = (
            cfg.autoencoder_weight * bce
            + cfg.target_weight * terms["target"]
            + cfg.regularizer_weight(step) * terms["regularizer"]
        )
        return terms

    @torch.no_grad()
    def graph_embedding(self) -> tuple[TransitionGraph, torch.Tensor]:
        """The explored transition graph and every state's target encoding, made on first use.

        Random episodes (``exploration_*``) explore the graph; its Laplacian eigenmap is turned onto the
        common planes of the rotations fitted to the embedded transitions, and, at step 0, the angles are
        set to those rotations' (:mod:`dyndis_learn.transition_graph`, :mod:`dyndis_learn.alignment`).
        Everything here is a function of the config alone, so a run resumed during the warm-up makes the
        same targets again.
        """
        if self._graph_map is None:
            cfg = self.config
            collector = RolloutCollector(
                cfg.env_id, cfg.exploration_episodes, cfg.exploration_steps, cfg.seed, cfg.env_kwargs, self.policy
            )
            try:
                graph = explore(collector, cfg.exploration_batches)
            finally:
                collector.close()
            generator = torch.Generator().manual_seed(cfg.seed)
            embedding = laplacian_eigenmap(graph, self.model.latent_dim, cfg.eigenmap_candidates, generator)
            embedding = torch.from_numpy(embedding).float()
            basis, angles = fit_planes(
                embedding[graph.sources],
                embedding[graph.targets],
                torch.from_numpy(graph.actions),
                self.model.n_actions,
                generator,
            )
            if self.step == 0:
                self.model.rotations.angles.copy_(angles)
            self._graph_map = graph, embedding @ basis
        return self._graph_map

    @torch.no_grad()
    def align_planes(self, batch: EpisodeBatch) -> None:
        """Turn the latent basis onto the planes of the actions' rotations, fitted to the batch.

        Each action's rotation is fitted to the batch's encoded transitions, the latent basis turned onto
        their common planes, and the angles set to the fitted ones (see :mod:`dyndis_learn.alignment`).
        """
        encodings = self.model.encode(torch.from_numpy(batch.observations))
        n = self.model.latent_dim
        basis, angles = fit_planes(
            encodings[:, :-1].reshape(-1, n),
            encodings[:, 1:].reshape(-1, n),
            torch.from_numpy(batch.actions).reshape(-1),
            self.model.n_actions,
            torch.Generator().manual_seed(self.config.seed),
        )
        self.model.rotate_latent_basis(basis)
        self.model.rotations.angles.copy_(angles)
        self.optimizer.state.clear()  # Adam's moments belong to the coordinates of the old basis

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
                its time is not counted in ``train_seconds``.
            callback_every: Period of ``callback`` in steps (0: never).

        Returns:
            The training history (one dict per logged step).
        """
        total = self.config.steps if steps is None else steps
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ValueError(f"`steps` must be a positive integer, got {steps!r}.")
        if self.run_dir is not None:
            self._prepare_run_dir()
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not progress,
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        try:
            while self.step < total:
                started = time.perf_counter()
                terms = self.train_step()
                self.train_seconds += time.perf_counter() - started
                if self.step % self.config.log_every == 0 or self.step == total:
                    row = self._log(terms)
                    bar.set_postfix(
                        ae=f"{row['autoencoder_bce']:.4f}",
                        roll=f"{row['rollout_bce']:.4f}",
                        cons=f"{row['consistency']:.1e}",
                        share=f"{row['min_plane_share']:.3f}",
                    )
                bar.update(1)
                every = self.config.checkpoint_every
                if self.run_dir is not None and every and self.step % every == 0 and self.step < total:
                    self.save(self.run_dir / CHECKPOINT_NAME)
                if callback is not None and callback_every and self.step % callback_every == 0:
                    callback(self)
        finally:
            bar.close()
        if self.run_dir is not None:
            self.save(self.run_dir / CHECKPOINT_NAME)
        if self._writer is not None:
            self._writer.flush()
        return self.history

    def _log(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.config
        with torch.no_grad():
            share = float(dominant_share(self.model.rotations.angles).min())
        row: dict[str, float] = {
            "step": self.step,
            "wall_time": round(self.train_seconds, 4),
            **{name: float(value.detach()) for name, value in terms.items()},
            "regularizer_weight": cfg.regularizer_weight(self.step - 1),
            "dynamics_weight": cfg.dynamics_weight(self.step - 1),
            "lr": cfg.learning_rate("encoder", self.step - 1),
            "angle_lr": cfg.learning_rate("angles", self.step - 1),
            "min_plane_share": share,
        }
        row = {column: row[column] for column in LOG_COLUMNS}
        self.history.append(row)
        if self.run_dir is not None:
            with open(self.run_dir / LOG_NAME, "a", newline="") as f:
                csv.writer(f).writerow([row[c] for c in LOG_COLUMNS])
        if self._writer is not None:
            for name, value in row.items():
                if name != "step":
                    self._writer.add_scalar(f"{'losses' if name in terms else 'train'}/{name}", value, self.step)
        return row

    def _prepare_run_dir(self) -> None:
        """Write config.json and (re)write the CSV log to match the history (so a resumed log has no gaps)."""
        run_dir = Path(str(self.run_dir))
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / CONFIG_NAME, self.config.to_dict())
        with open(run_dir / LOG_NAME, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(LOG_COLUMNS)
            writer.writerows([row[c] for c in LOG_COLUMNS] for row in self.history)
        if self.config.tensorboard and self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError(
                    "TrainConfig.tensorboard=True needs TensorBoard: pip install 'dyndis-learn[tensorboard]'."
                ) from exc
            self._writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=self.step + 1)

    # -- checkpoints -----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (model, optimiser, RNG, step, history, config) atomically to ``path``."""
        optim_tensors, optim_meta = optimizer_state_to_tensors(self.optimizer)
        tensors = {f"{_MODEL_PREFIX}{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(optim_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        state = {
            "config": self.config.to_dict(),
            "step": self.step,
            "train_seconds": self.train_seconds,
            "history": self.history,
            "optimizer": optim_meta,
            "image_shape": list(self.model.image_shape),
            "n_actions": self.model.n_actions,
        }
        return save_checkpoint(path, tensors, state)

    @classmethod
    def load(cls, path: str | Path, run_dir: str | Path | None = None, policy: Policy | None = None) -> Trainer:
        """Rebuild a trainer from a checkpoint, ready to continue training exactly where it stopped.

        Every parameter stays trainable and is registered with the restored optimiser.
        """
        tensors, state = load_checkpoint(path)
        trainer = cls(TrainConfig.from_dict(state["config"]), run_dir, policy)
        trainer.model.load_state_dict(model_state(tensors))
        optimizer_state_from_tensors(
            trainer.optimizer,
            {k: v for k, v in tensors.items() if k.startswith("optim.")},
            state["optimizer"],
        )
        torch.set_rng_state(tensors["rng.torch"])
        trainer.step = int(state["step"])
        trainer.train_seconds = float(state["train_seconds"])
        trainer.history = [dict(row) for row in state["history"]]
        return trainer

    @classmethod
    def resume(cls, run_dir: str | Path, policy: Policy | None = None) -> Trainer:
        """Continue the run in ``run_dir`` from its checkpoint."""
        return cls.load(Path(run_dir) / CHECKPOINT_NAME, run_dir, policy)

    def close(self) -> None:
        """Close the environment and the TensorBoard writer."""
        self.collector.close()
        self._close_warmup_collector()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
