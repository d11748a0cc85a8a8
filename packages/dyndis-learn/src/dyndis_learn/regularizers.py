"""The entanglement regulariser on action angles (its weight's schedule: :mod:`dyndis_learn.schedules`).

Quessard et al. (2020) push each action to rotate in a single plane: per action, the entanglement is
``sum_p theta_p^2 - max_p theta_p^2``, the squared angle outside the dominant plane. Its mean over actions
is the regulariser ``r``; the loss term is ``w(step) * f(r)`` where the target says what ``f`` does:

- ``MIN`` (default): ``f(r) = r``, drive every action towards one plane.
- ``MAX``: ``f(r) = -r``, reward entangled actions (an ablation).
- ``VALUE``: ``f(r) = (r - value)^2``, hold the entanglement at a given value.
"""

from __future__ import annotations

import enum

import torch

__all__ = [
    "EntanglementTarget",
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
