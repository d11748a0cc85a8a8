"""The Python API in about four lines.

Example:
    >>> from dyndis_learn import Learner, load_model
    >>> learner = Learner.from_env("DynDis/GridWorld-v0")          # doctest: +SKIP
    >>> learner.train()                                            # doctest: +SKIP
    >>> results = learner.evaluate()                               # doctest: +SKIP
    >>> learner.save("gridworld.safetensors")                      # doctest: +SKIP
    >>> learner = Learner.load("gridworld.safetensors")            # doctest: +SKIP
    >>> model = load_model("gridworld.safetensors")                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from dyndis_learn.checkpoint import load_model_state, read_checkpoint
from dyndis_learn.config import EvalConfig, TrainConfig
from dyndis_learn.devices import module_device, resolve_device
from dyndis_learn.evaluate import EvalEpisodes, check_evaluation_memory, collect_eval_episodes, evaluate_model
from dyndis_learn.files import read_json_or_yaml
from dyndis_learn.methods import make_method
from dyndis_learn.model import WorldModel, encode_checked, synthesis_modes_for
from dyndis_learn.report import Progress, write_report
from dyndis_learn.results import Evaluation, TrainingSummary
from dyndis_learn.rollouts import Policy
from dyndis_learn.trainer import Trainer, checkpoint_config

__all__ = ["Learner", "load_config", "load_model"]


def load_config(path: str | Path) -> TrainConfig:
    """Read a :class:`TrainConfig` from a JSON or YAML file (any subset of its fields; older layouts migrated).

    Files ending in ``.yaml`` or ``.yml`` are read as YAML, all others as JSON.
    """
    data = read_json_or_yaml(path, "config file")
    if not isinstance(data, Mapping):
        raise ValueError(f"Config file {str(path)!r} must hold a mapping of TrainConfig fields, got {data!r}.")
    return TrainConfig.from_dict(data)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """The world model of a file written by :meth:`Learner.save` (or a run's checkpoint), for inference.

    The model is built and loaded on the CPU, then moved to ``device`` (``"cpu"`` by default, whatever
    device the run trained on; ``"auto"``, ``"cuda"`` or ``"cuda:N"`` as in ``TrainConfig.device``).

    Unlike :meth:`Learner.load` this builds no trainer (no environment, no optimiser) and leaves torch's
    process-wide state alone: restoring a learner also restores its run's thread count and global RNG
    state, so an agent built around it would run on the training run's threads and start from the same
    weights whatever its own seed.

    Returns:
        The model, in eval mode.

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        CheckpointError: If the file is not a readable, intact checkpoint, or its config does not match
            its tensors (:mod:`dyndis_learn.checkpoint`).
        ValueError: If ``device`` is not a device spelling, or a CUDA device this machine lacks.
    """
    target = resolve_device(device, "device")
    checkpoint = read_checkpoint(path)
    config = checkpoint_config(checkpoint).built_model
    with torch.random.fork_rng(devices=[]):  # the layers' initial weights draw from the global RNG
        model = make_method(config).build_model(checkpoint.image_shape, checkpoint.n_actions, config)
    load_model_state(model, checkpoint, dataclasses.asdict(config))
    return model.to(target).eval()


class Learner:
    """Learns a world model whose actions are rotations of a latent sphere, from a Gymnasium env id.

    Args:
        config: The run's recipe.
        run_dir: Optional folder for logs, checkpoints and the report.
        policy: Optional behaviour policy for the training episodes (uniformly random by default).
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path | None = None, policy: Policy | None = None) -> None:
        self.trainer = Trainer(config, run_dir, policy)

    @classmethod
    def from_env(
        cls,
        env_id: str,
        env_kwargs: Mapping[str, Any] | None = None,
        *,
        run_dir: str | Path | None = None,
        policy: Policy | None = None,
        **config: Any,
    ) -> Learner:
        """A learner with the default recipe for ``env_id``; any :class:`TrainConfig` field can be overridden.

        Example: ``Learner.from_env("DynDis/GridWorld-v0", steps=400, model={"latent_dim": 6})``.
        """
        env = {"id": env_id, "kwargs": dict(env_kwargs or {})}
        return cls(TrainConfig.from_dict({"env": env, **config}), run_dir, policy)

    # -- accessors -------------------------------------------------------------------------------------

    @property
    def config(self) -> TrainConfig:
        """The run's configuration."""
        return self.trainer.config

    @property
    def model(self) -> WorldModel:
        """The world model (a torch module)."""
        return self.trainer.model

    @property
    def history(self) -> list[dict[str, float]]:
        """The training log so far, one dict per logged step."""
        return self.trainer.history

    # -- training, evaluation, report ------------------------------------------------------------------

    def train(self, steps: int | None = None, *, progress: bool = True) -> list[dict[str, float]]:
        """Train up to ``steps`` SGD steps in total (default ``config.steps``); returns the history."""
        return self.trainer.train(steps, progress=progress)

    def evaluate(self, config: EvalConfig | None = None, *, progress: bool | None = None) -> Evaluation:
        """Rollout error, group structure and fidelity on fresh episodes, with the training summary.

        The training history goes to the evaluation, so ``dynamics_trained`` says whether the dynamics phase
        ran to the end of its ramp (a run stopped in the warm-up does not pass ``all``).

        ``evaluate().to_dict()`` holds every key of the report's ``report.json`` but the report-only ones
        (``rollout_bce_at``, ``metrics``, ``provenance`` and the list of ``files``).

        Args:
            config: Evaluation settings (default ``config.evaluation``).
            progress: A line per phase on stderr (True), none (False), or only when stderr is a terminal (None).
        """
        cfg = config or self.config.evaluation
        steps = Progress(progress, total=2, prefix="evaluate")
        episodes = self._episodes(cfg, steps)
        evaluation = self._evaluation(cfg, episodes, steps)
        steps.done("evaluated")
        return evaluation

    def _episodes(self, cfg: EvalConfig, steps: Progress) -> EvalEpisodes:
        env = self.config.env
        check_evaluation_memory(self.model.image_shape, self.model.latent_dim, cfg)
        with steps.phase(f"collecting {cfg.episodes} evaluation episodes of {cfg.horizon} steps"):
            return collect_eval_episodes(env.id, env.kwargs, cfg)

    def _evaluation(self, cfg: EvalConfig, episodes: EvalEpisodes, steps: Progress) -> Evaluation:
        env = self.config.env
        with steps.phase("rollout error, group structure and fidelity"):
            evaluation = evaluate_model(
                self.model,
                env.id,
                env.kwargs,
                cfg,
                episodes=episodes,
                history=self.history,
                seen_states=self.trainer.seen_states(),
            )
        return dataclasses.replace(evaluation, training=self._training_summary())

    def _training_summary(self) -> TrainingSummary:
        return TrainingSummary(self.trainer.step, self.trainer.train_seconds, self.config.to_dict())

    def report(
        self, out_dir: str | Path | None = None, config: EvalConfig | None = None, *, progress: bool | None = None
    ) -> Path:
        """Evaluate and write PNGs, the GIF, ``report.json`` and ``report.md``; returns report.json's path.

        Args:
            out_dir: Destination folder (default: the run folder).
            config: Evaluation settings (default ``config.evaluation``).
            progress: A line per phase on stderr (True), none (False), or only when stderr is a terminal (None).
        """
        out = out_dir if out_dir is not None else self.trainer.run_dir
        if out is None:
            raise ValueError("`out_dir` is required for a learner without a run folder.")
        cfg = config or self.config.evaluation
        steps = Progress(progress, total=5)
        episodes = self._episodes(cfg, steps)
        evaluation = self._evaluation(cfg, episodes, steps)
        return write_report(
            out,
            self.model,
            evaluation,
            self.history,
            episodes.batch,
            cfg.gif_steps,
            seed=cfg.seed,
            progress=steps,
            tensorboard=self.config.logging.tensorboard,
        )

    # -- persistence -----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write everything (model, optimiser, step, history, config) to one safetensors file."""
        return self.trainer.save(path)

    @classmethod
    def load(cls, path: str | Path, run_dir: str | Path | None = None, *, device: str | None = None) -> Learner:
        """Restore a learner saved with :meth:`save` (or a run folder's checkpoint); training can continue.

        It trains on the checkpoint's ``config.device``, or on ``device`` where given (a run trained on a
        GPU continues on the CPU with ``device="cpu"``; see :meth:`Trainer.load`).

        Raises:
            FileNotFoundError: If there is no file at ``path``.
            CheckpointError: If the checkpoint cannot be used (see :meth:`Trainer.load`).
        """
        learner = cls.__new__(cls)
        learner.trainer = Trainer.load(path, run_dir, device=device)
        return learner

    # -- using the model -------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(
        self, images: npt.NDArray[np.uint8], synthesis_modes: int | str | None = None
    ) -> npt.NDArray[np.float32]:
        """uint8 images (..., H, W, C) -> points on the unit sphere (..., n).

        Args:
            images: The images.
            synthesis_modes: 1 for the encoder's own encodings; more (or ``"auto"``), with angle bins, the
                decoder-checked ones (:func:`~dyndis_learn.model.encode_checked`). Default: the run's
                ``evaluation.synthesis_modes``, the encodings its report judged.
        """
        self.model.eval()
        frames = torch.as_tensor(images, device=module_device(self.model))
        return encode_checked(self.model, frames, self._synthesis_modes(synthesis_modes)).cpu().numpy()

    def _synthesis_modes(self, asked: int | str | None) -> int:
        setting = self.trainer.config.evaluation.synthesis_modes if asked is None else asked
        return synthesis_modes_for(self.model, setting)

    @torch.no_grad()
    def decode(self, latents: npt.ArrayLike) -> npt.NDArray[np.uint8]:
        """Latents (..., n) -> uint8 images (..., H, W, C)."""
        self.model.eval()
        device = module_device(self.model)
        probabilities = self.model.decode(torch.as_tensor(np.asarray(latents, dtype=np.float32), device=device))
        return (probabilities.cpu().numpy() * 255).round().astype(np.uint8)

    @torch.no_grad()
    def predict(
        self, images: npt.NDArray[np.uint8], actions: npt.ArrayLike, synthesis_modes: int | str | None = None
    ) -> npt.NDArray[np.uint8]:
        """Imagined frames: encode ``images`` (B, H, W, C), rotate by ``actions`` (B, T), decode every step.

        ``synthesis_modes`` chooses the encodings as in :meth:`encode`.

        Returns:
            uint8 frames of shape (B, T + 1, H, W, C); index 0 is the reconstruction of the input.
        """
        self.model.eval()
        device = module_device(self.model)
        actions_tensor = torch.as_tensor(np.asarray(actions, dtype=np.int64), device=device)
        start = encode_checked(
            self.model, torch.as_tensor(images, device=device), self._synthesis_modes(synthesis_modes)
        )
        latents = self.model.rollout(start, actions_tensor)
        return self.decode(latents.cpu().numpy())

    def close(self) -> None:
        """Release the training environment."""
        self.trainer.close()
