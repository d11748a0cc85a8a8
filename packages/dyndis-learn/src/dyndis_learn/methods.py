"""Methods: the world models the trainer can train, registered by name.

A method builds its model from the environment's spaces and the model section of the config, says which
parameters form the optimiser's groups (their learning rates follow :mod:`dyndis_learn.schedules`), and
computes the loss terms of a batch. The trainer, checkpoints, evaluation and report work with any
registered method; ``TrainConfig.model.method`` picks one through :func:`make_method`. Register others
with :func:`register_method`. The built-in methods:

- ``"rotation"`` (:class:`RotationMethod`): the design's rotation model and the full objective of
  :mod:`dyndis_learn.objective` (autoencoding, rollout, consistency, uniformity, regulariser), the default;
- ``"rotation-unregularised"`` (:class:`UnregularisedRotationMethod`): the same without the entanglement
  regulariser, the ablation of Quessard et al. (2020) (their "noreg" runs);
- ``"quessard2020"`` (:class:`Quessard2020Method`): the original paper's objective alone, the rollout BCE of
  ``decode(R(a_t) ... R(a_1) enc(x_0))`` against ``x_t`` for ``t = 0 .. T`` plus the regulariser; with
  :data:`QUESSARD2020_CONFIG`, its published settings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from dyndis_learn import objective
from dyndis_learn.config import ModelConfig, TrainConfig
from dyndis_learn.model import WorldModel
from dyndis_learn.objective import FrameTargets, LossWeights, TrainBatch
from dyndis_learn.registry import METHODS
from dyndis_learn.regularizers import dominant_share
from dyndis_learn.schedules import Part

__all__ = [
    "METHODS",
    "QUESSARD2020_CONFIG",
    "Method",
    "Quessard2020Method",
    "RotationMethod",
    "UnregularisedRotationMethod",
    "make_method",
    "register_method",
]


class Method:
    """A world model and its objective (subclass it and register it with :func:`register_method`)."""

    #: The name it is registered under (``TrainConfig.model.method``).
    name: ClassVar[str]

    def build_model(
        self, image_shape: Sequence[int], n_actions: int, config: ModelConfig, generator: torch.Generator | None = None
    ) -> WorldModel:
        """The untrained model for images of ``image_shape`` (H, W, C) and ``n_actions`` actions.

        Its networks draw their initial weights from torch's global RNG (seeded by the trainer), its angles
        from ``generator``.
        """
        architecture = {k: v for k, v in dataclasses.asdict(config).items() if k != "method"}
        architecture["latent_manifold"] = config.latent_manifold or "sphere"  # None: a trainer resolves it first
        return WorldModel(image_shape, n_actions, **architecture, generator=generator)

    def parameter_groups(self, model: WorldModel) -> list[tuple[Part, list[torch.nn.Parameter]]]:
        """The optimiser's parameter groups, named by the part whose learning rate they follow."""
        return [
            ("encoder", list(model.encoder.parameters())),
            ("decoder", list(model.decoder.parameters())),
            ("angles", [model.rotations.angles]),
        ]

    def terms(
        self, model: WorldModel, batch: TrainBatch, weights: LossWeights, targets: FrameTargets | None
    ) -> dict[str, torch.Tensor]:
        """The loss terms of ``batch`` and their weighted sum ``"loss"`` (:func:`dyndis_learn.objective.terms`)."""
        return objective.terms(model, batch, weights, targets)

    def prepare(self, model: WorldModel, config: TrainConfig, env: Any) -> None:
        """Check the run's config and set up what the model takes from the environment, before training.

        The trainer calls it once, right after :meth:`build_model`, with the training environment (a vector
        env). The rotation methods need nothing; a method that cannot train under ``config`` (a warm-up it
        does not support) raises a ValueError naming the field.
        """

    @torch.no_grad()
    def plane_share(self, model: WorldModel) -> float:
        """The smallest share of an action's ``sum(theta^2)`` in its dominant plane (the log's ``min_plane_share``)."""
        return float(dominant_share(model.rotations.angles).min())


def make_method(config: ModelConfig) -> Method:
    """The method that ``config.method`` names."""
    return METHODS[METHODS.check("ModelConfig.method", config.method)]()


#: Class decorator: register a :class:`Method` subclass under a name (``TrainConfig.model.method``).
register_method = METHODS.register


@METHODS.register("rotation")
class RotationMethod(Method):
    """The design's model: a CNN encoder onto the unit sphere, a mirrored decoder, one rotation per action."""


@METHODS.register("rotation-unregularised")
class UnregularisedRotationMethod(RotationMethod):
    """The rotation model without the entanglement regulariser: the ablation of Quessard et al. (2020).

    Every term of :class:`RotationMethod` with the configured weights, except the regulariser, whose weight
    is 0 whatever ``regularizer.weight`` says (it is still computed for the log, outside the gradient).
    """

    def terms(
        self, model: WorldModel, batch: TrainBatch, weights: LossWeights, targets: FrameTargets | None
    ) -> dict[str, torch.Tensor]:
        """The rotation model's terms with the regulariser's weight set to 0."""
        return objective.terms(model, batch, dataclasses.replace(weights, regularizer=0.0), targets)


@METHODS.register("quessard2020")
class Quessard2020Method(RotationMethod):
    """The objective of Quessard et al. (NeurIPS 2020): the rollout BCE and the regulariser, nothing else.

    Per episode, ``x_0`` alone is encoded and every frame ``t = 0 .. T`` is decoded from the rollout
    ``R(a_t) ... R(a_1) enc(x_0)`` (the identity path at ``t = 0``); the loss is the paper's, the sum over
    frames of the mean-pixel BCE divided by ``T`` (not ``T + 1``) and averaged over episodes, plus
    ``w * regulariser`` with ``w`` from the regulariser's schedule. So the logged ``autoencoder_bce`` is the
    BCE at ``t = 0`` (weight ``1 / T``) and ``rollout_bce`` the mean over ``t >= 1`` (weight 1). No later
    frame is autoencoded, and there is no consistency, uniformity or target term: the ``loss.*`` weights,
    the dynamics ramp and a warm-up's targets are not used. Train it with ``warmup.kind = "none"`` (a warm-up's
    single-frame batches would only be autoencoded); :data:`QUESSARD2020_CONFIG` has the paper's settings.
    """

    def terms(
        self, model: WorldModel, batch: TrainBatch, weights: LossWeights, targets: FrameTargets | None
    ) -> dict[str, torch.Tensor]:
        """The paper's loss on ``batch`` (every frame ``t >= 1`` decoded from the rollout)."""
        batch_size, steps = batch.actions.shape
        paper = LossWeights(
            autoencoder=1.0 / steps if steps else 1.0,
            rollout=1.0 if steps else 0.0,
            uniformity=0.0,
            regularizer=weights.regularizer,
            regularizer_target=weights.regularizer_target,
            regularizer_value=weights.regularizer_value,
        )
        every = torch.ones(batch_size, steps, dtype=torch.bool, device=batch.frames.device)
        rollout_only = batch._replace(from_rollout=every, decode_twice=False)
        return objective.terms(model, rollout_only, paper, None)


#: The published settings of Quessard et al. (2020) on their ball world (``fig6_ourmethod.ipynb`` of
#: IndustAI/learning-group-structure), for ``TrainConfig.from_dict``: latent dimension 4, 5000 SGD steps of
#: 8 episodes of T = 10 steps, every episode from the centre, Adam at 1e-2 for encoder, decoder and angles
#: (no decay, no ramp), angles initialised uniform in [-pi/4, pi/4] (the paper's ``pi (2u - 1) / dim``), the
#: regulariser at a constant 1e-2 (0 for the "noreg" ablation: ``regularizer.weight = 0``). Not reproduced:
#: the paper's networks (one 5-channel 10 x 10 convolution with stride 3 and a 4 x 4 max-pool, FC 64; the
#: decoder a 34 x 34 transposed convolution); this preset keeps the model section's CNN, without normalisation
#: as the paper's.
QUESSARD2020_CONFIG: dict[str, Any] = {
    "env": {"id": "DynDis/BallWorld-v0", "kwargs": {"start": [2, 2]}},
    "steps": 5000,
    "data": {"episodes_per_step": 8, "episode_steps": 10},
    "model": {"method": "quessard2020", "latent_dim": 4, "angle_init_scale": math.pi / 4, "encoder_norm": "none"},
    "warmup": {"kind": "none"},
    "optim": {
        "lr": 1e-2,
        "angle_lr": 1e-2,
        "angle_lr_ramp": False,
        "dynamics_ramp_steps": 0,
        "final_lr_fraction": 1.0,
    },
    "regularizer": {"schedule": "constant", "weight": 1e-2},
}
