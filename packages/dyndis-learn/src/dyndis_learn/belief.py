"""A Bayes filter over an angle-bin model's circles: where the agent is, from every frame it has seen so far.

An angle-bin encoder (:class:`~dyndis_learn.model.WorldModel` with ``angle_bins``) gives each circle of the
torus a distribution over ``M`` angles. Read frame by frame, a single view can mislead it (two of Cars3D's cars
that look alike from one side); but an agent that acts knows how its actions move the state: each action turns
each circle by its learned angle. :class:`AngleBeliefFilter` keeps, per circle, a belief over the bins,
shifts it by the action's angle at every step (the motion model) and adds the encoder's log-probabilities of
the new frame (the evidence), so the views of a trajectory vote together, as in a discrete hidden Markov
model's forward pass. The belief is kept per circle (a product of independent circles), which is exact for a
disentangled model: each action turns its own circle only.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from dyndis_learn.alignment import plane_angles
from dyndis_learn.devices import module_device
from dyndis_learn.model import WorldModel, encode_frames
from dyndis_learn.rotations import circle_planes

__all__ = ["AngleBeliefFilter"]


class AngleBeliefFilter:
    """Track the state of one agent on an angle-bin model's torus: a log-belief over every circle's bins.

    Args:
        model: A trained :class:`~dyndis_learn.model.WorldModel` with ``angle_bins``.
        evidence_floor: The least probability one frame gives a bin (its log is the most one frame can count
            against a bin): a frame the encoder misreads with confidence then costs a bounded amount, which the
            next views make up for. In (0, 1).

    Example:
        >>> belief = AngleBeliefFilter(model)
        >>> belief.reset(first_image)
        >>> belief.update(next_image, action)
        >>> belief.latent()                  # the torus point of the most probable bins
    """

    def __init__(self, model: WorldModel, evidence_floor: float = 1e-3) -> None:
        if getattr(model, "angle_bins", None) is None:
            raise ValueError("AngleBeliefFilter needs a model with `angle_bins` (a distribution over each angle).")
        if not 0 < evidence_floor < 1:
            raise ValueError(f"`evidence_floor` must be in (0, 1), got {evidence_floor!r}.")
        self.model = model.eval()
        self.evidence_floor = evidence_floor
        self.circles = model.latent_dim // 2
        bins = model.bins
        self.bins = (bins,) * self.circles if isinstance(bins, int) else bins  # each circle's own number
        # (circles, M): past a circle's own bins (a model with fewer bins on some circles), no belief
        self.unused_bins = torch.arange(model.max_bins) >= torch.tensor(self.bins).unsqueeze(-1)
        with torch.no_grad():
            matrices = model.rotations.matrices().detach().cpu().to(torch.float64)
        # each action's turn of each circle (the plane (2c, 2c + 1)), in bins
        per_bin = torch.tensor(self.bins, dtype=torch.float64) / (2 * math.pi)
        self.shifts = plane_angles(matrices)[:, circle_planes(model.latent_dim)] * per_bin
        self.log_belief: torch.Tensor | None = None

    @torch.no_grad()
    def evidence(self, image: npt.NDArray[np.uint8]) -> torch.Tensor:
        """The encoder's log-probability of every bin of every circle for one image (H, W, C): (circles, M)."""
        frames = torch.as_tensor(np.asarray(image))[None].to(module_device(self.model))
        logits = self.model.angle_logits(encode_frames(self.model.encoder, frames))[0].cpu().to(torch.float64)
        evidence = F.log_softmax(logits, dim=-1).clamp(min=math.log(self.evidence_floor))
        return evidence.masked_fill(self.unused_bins, float("-inf"))

    def reset(self, image: npt.NDArray[np.uint8]) -> None:
        """Start a trajectory at ``image``: the belief is its evidence alone."""
        self.log_belief = _normalised(self.evidence(image))

    def update(self, image: npt.NDArray[np.uint8], action: int) -> None:
        """``action`` was taken and ``image`` is what followed: move the belief by the action, then weigh it."""
        if self.log_belief is None:
            raise RuntimeError("AngleBeliefFilter.update before reset: call reset(first_image) first.")
        moved = torch.full_like(self.log_belief, float("-inf"))
        for circle, (row, bins, turn) in enumerate(zip(self.log_belief, self.bins, self.shifts[action])):
            moved[circle, :bins] = _shift(row[:bins], float(turn))
        self.log_belief = _normalised(moved + self.evidence(image))

    def latent(self) -> torch.Tensor:
        """The torus point of each circle's most probable bin (float64, on the CPU): what the planner searches from.

        Read from the belief as :meth:`~dyndis_learn.model.WorldModel.latents` reads an encoder's logits: the
        circular mean of the belief over that bin and its :data:`~dyndis_learn.model.MODE_WINDOW` neighbours.
        """
        if self.log_belief is None:
            raise RuntimeError("AngleBeliefFilter.latent before reset: call reset(first_image) first.")
        device = module_device(self.model)
        with torch.no_grad():
            return self.model.latents(self.log_belief.flatten().to(device)).cpu()


def _normalised(log_belief: torch.Tensor) -> torch.Tensor:
    return log_belief - torch.logsumexp(log_belief, dim=-1, keepdim=True)


def _shift(log_row: torch.Tensor, bins: float) -> torch.Tensor:
    """A circle's log-belief turned by ``bins`` (fractional: split linearly between the two whole shifts)."""
    below = math.floor(bins)
    above = bins - below
    probabilities = log_row.exp()
    moved = (1 - above) * probabilities.roll(below) + above * probabilities.roll(below + 1)
    return moved.clamp(min=torch.finfo(moved.dtype).tiny).log()
