"""The entanglement regulariser on action angles and the schedule of its weight.

Quessard et al. (2020) push each action to rotate in a single plane: per action, the entanglement is
``sum_p theta_p^2 - max_p theta_p^2``, the squared angle outside the dominant plane. Its mean over actions
is the regulariser ``r``; the loss term is ``w(step) * f(r)`` where the target says what ``f`` does:

- ``MIN`` (default): ``f(r) = r``, drive every action towards one plane.
- ``MAX``: ``f(r) = -r``, reward entangled actions (an ablation).
- ``VALUE``: ``f(r) = (r - value)^2``, hold the entanglement at a given value.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch

__all__ = [
    "EntanglementTarget",
    "ScheduleKind",
    "WeightSchedule",
    "dominant_share",
    "entanglement",
    "entanglement_penalty",
]


class EntanglementTarget(str, enum.Enum):
    """What the regulariser does with the mean entanglement ``r``."""

    MIN = "min"
    """Minimise ``r`` (one plane per action)."""
    MAX = "max"
    """Maximise ``r``."""
    VALUE = "value"
    """Pull ``r`` towards a given value: ``(r - value)^2``."""


class ScheduleKind(str, enum.Enum):
    """Shape of the regulariser weight over training steps."""

    CONSTANT = "constant"
    """``end`` from the first step."""
    LINEAR = "linear"
    """``start`` until ``delay`` steps, then linear to ``end`` over ``ramp`` steps, then ``end``."""


def entanglement(angles: torch.Tensor) -> torch.Tensor:
    """Per action, the squared angle outside its dominant plane: ``sum theta^2 - max theta^2``.

    Args:
        angles: Shape (..., n_planes).

    Returns:
        Shape (...,), non-negative.
    """
    squared = angles.square()
    return squared.sum(-1) - squared.amax(-1)


def dominant_share(angles: torch.Tensor) -> torch.Tensor:
    """Per action, the share of ``sum theta^2`` held by its largest plane, in [1 / n_planes, 1].

    Args:
        angles: Shape (..., n_planes).

    Returns:
        Shape (...,); 1 for an all-zero action (it rotates in no plane at all, trivially "one plane").
    """
    squared = angles.square()
    total = squared.sum(-1)
    return torch.where(total > 0, squared.amax(-1) / total.clamp_min(torch.finfo(angles.dtype).tiny), 1.0)


def entanglement_penalty(
    angles: torch.Tensor, target: EntanglementTarget | str = EntanglementTarget.MIN, value: float = 0.0
) -> torch.Tensor:
    """The regulariser's loss term before weighting (see the module docstring).

    Args:
        angles: All actions' angles, shape (A, n_planes).
        target: ``"min"``, ``"max"`` or ``"value"``.
        value: The target entanglement for ``"value"`` (ignored otherwise).

    Returns:
        A scalar tensor.
    """
    target = EntanglementTarget(target)
    mean = entanglement(angles).mean()
    if target is EntanglementTarget.MIN:
        return mean
    if target is EntanglementTarget.MAX:
        return -mean
    return (mean - value).square()


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
