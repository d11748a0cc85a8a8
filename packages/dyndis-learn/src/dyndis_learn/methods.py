"""Methods: the world models the trainer can train, registered by name.

A method builds its model from the environment's spaces and the model section of the config, says which
parameters form the optimiser's groups (their learning rates follow :mod:`dyndis_learn.schedules`), and
computes the loss terms of a batch. The trainer, checkpoints, evaluation and report work with any
registered method; ``TrainConfig.model.method`` picks one through :func:`make_method`. The rotation model
of the design (:class:`RotationMethod`, ``"rotation"``) is the built-in one; register others with
:func:`register_method`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import torch

from dyndis_learn import objective
from dyndis_learn.config import ModelConfig
from dyndis_learn.model import WorldModel
from dyndis_learn.objective import FrameTargets, LossWeights, TrainBatch
from dyndis_learn.registry import METHODS
from dyndis_learn.schedules import Part

__all__ = ["METHODS", "Method", "RotationMethod", "make_method", "register_method"]


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


def make_method(config: ModelConfig) -> Method:
    """The method that ``config.method`` names."""
    return METHODS[METHODS.check("ModelConfig.method", config.method)]()


#: Class decorator: register a :class:`Method` subclass under a name (``TrainConfig.model.method``).
register_method = METHODS.register


@METHODS.register("rotation")
class RotationMethod(Method):
    """The design's model: a CNN encoder onto the unit sphere, a mirrored decoder, one rotation per action."""
