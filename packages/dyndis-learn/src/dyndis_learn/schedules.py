"""Schedules: what changes with the training step (dynamics ramp, learning rates, regulariser weight).

They are small objects built from the configuration once (:meth:`Schedules.from_config`); the config holds
only numbers. Every schedule is a pure function of the step, so a resumed run follows the same curves.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Literal

from dyndis_learn.config import TrainConfig

__all__ = ["ScheduleKind", "Schedules", "WeightSchedule"]

#: The parameter groups whose learning rates the schedules give.
Part = Literal["encoder", "decoder", "angles"]


class ScheduleKind(str, enum.Enum):
    """Shape of the regulariser weight over training steps."""

    CONSTANT = "constant"
    """``end`` from the first step."""
    LINEAR = "linear"
    """``start`` until ``delay`` steps, then linear to ``end`` over ``ramp`` steps, then ``end``."""


@dataclass(frozen=True)
class WeightSchedule:
    """The regulariser weight as a function of the training step.

    Attributes:
        kind: ``"constant"`` or ``"linear"``.
        end: The weight after the ramp (and throughout for ``"constant"``).
        start: The weight before and at the start of the ramp (``"linear"`` only).
        delay: Steps at ``start`` before the ramp begins (``"linear"`` only).
        ramp: Length of the ramp in steps (``"linear"`` only).
    """

    kind: ScheduleKind | str = ScheduleKind.LINEAR
    end: float = 1e-2
    start: float = 0.0
    delay: int = 0
    ramp: int = 1000

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", ScheduleKind(self.kind))
        except ValueError:
            raise ValueError(
                f"Invalid schedule `kind`, expected one of {[k.value for k in ScheduleKind]}, got {self.kind!r}."
            ) from None
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Schedule `{name}` must be a finite number >= 0, got {value!r}.")
        for name in ("delay", "ramp"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Schedule `{name}` must be an integer >= 0, got {value!r}.")

    def __call__(self, step: int) -> float:
        """The weight at training step ``step`` (0-based)."""
        if self.kind is ScheduleKind.CONSTANT:
            return float(self.end)
        progress = 1.0 if self.ramp == 0 else min(max((step - self.delay) / self.ramp, 0.0), 1.0)
        return float(self.start + (self.end - self.start) * progress)


@dataclass(frozen=True)
class Schedules:
    """Every per-step factor of a run.

    Attributes:
        steps: Total SGD steps of the run (the decay is placed relative to it).
        warmup_steps: Steps of the warm-up; the dynamics terms start after them.
        dynamics_ramp_steps: Steps over which the dynamics terms ramp in.
        lr: Initial learning rate of the encoder and decoder.
        angle_lr: Initial learning rate of the angles.
        angle_lr_ramp: Whether the angles' rate follows the dynamics ramp.
        decay_start: Fraction of ``steps`` after which both rates decay geometrically...
        final_lr_fraction: ...to this fraction of their initial value at the last step.
        regularizer: The regulariser's weight schedule.
    """

    steps: int
    warmup_steps: int
    dynamics_ramp_steps: int
    lr: float
    angle_lr: float
    angle_lr_ramp: bool
    decay_start: float
    final_lr_fraction: float
    regularizer: WeightSchedule

    @classmethod
    def from_config(cls, config: TrainConfig, warmup_steps: int, default_angle_lr: float) -> Schedules:
        """The schedules of ``config`` around a warm-up of ``warmup_steps`` steps.

        Args:
            config: The run's configuration.
            warmup_steps: Steps of the warm-up (0 without one).
            default_angle_lr: The warm-up's angle learning rate where ``config.optim.angle_lr`` is None.
        """
        optim, reg = config.optim, config.regularizer
        return cls(
            steps=config.steps,
            warmup_steps=warmup_steps,
            dynamics_ramp_steps=optim.dynamics_ramp_steps,
            lr=optim.lr,
            angle_lr=default_angle_lr if optim.angle_lr is None else optim.angle_lr,
            angle_lr_ramp=optim.angle_lr_ramp,
            decay_start=optim.decay_start,
            final_lr_fraction=optim.final_lr_fraction,
            regularizer=WeightSchedule(
                reg.schedule,
                end=reg.weight,
                start=0.0,
                delay=warmup_steps if reg.delay is None else reg.delay,
                ramp=optim.dynamics_ramp_steps if reg.ramp is None else reg.ramp,
            ),
        )

    def dynamics_weight(self, step: int) -> float:
        """Ramp factor in [0, 1] of the rollout and consistency terms at ``step``."""
        if step < self.warmup_steps:
            return 0.0
        if self.dynamics_ramp_steps == 0:
            return 1.0
        return min((step - self.warmup_steps + 1) / self.dynamics_ramp_steps, 1.0)

    def regularizer_weight(self, step: int) -> float:
        """Weight of the entanglement regulariser at ``step``."""
        return self.regularizer(step)

    def lr_scale(self, step: int) -> float:
        """Multiplier of both learning rates at ``step``: 1, then geometric decay to ``final_lr_fraction``."""
        start = self.decay_start * self.steps
        if step < start or self.steps - start <= 0:
            return 1.0
        return self.final_lr_fraction ** ((step - start) / (self.steps - start))

    def learning_rate(self, part: Part, step: int) -> float:
        """Adam learning rate of ``part`` at ``step``.

        The angles' rate also follows the dynamics ramp (with ``angle_lr_ramp``): Adam normalises away the
        ramp of the loss weight, so without it the angles would start at full speed in whatever planes the
        first noisy gradients point to, before the encoder has followed.
        """
        if part == "angles":
            ramp = self.dynamics_weight(step) if self.angle_lr_ramp else 1.0
            return self.angle_lr * self.lr_scale(step) * ramp
        return self.lr * self.lr_scale(step)
