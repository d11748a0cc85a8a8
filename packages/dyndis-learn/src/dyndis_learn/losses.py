"""The terms of the training objective, as pure functions of tensors.

Notation: ``B`` episodes of ``T`` steps, encodings ``e_t = enc(x_t)`` on the unit sphere, step rotations
``R_t = R(a_t)`` and path rotations ``P_t = R_t ... R_1`` (``P_0 = I``).

- :func:`frame_bce`: binary cross-entropy of decoded logits against the frames, per frame.
- :func:`neighbour_margin`: whether each decoded frame is nearer (in pixels) its own image than the images
  of its episode neighbours, states one action away. BCE averages over every pixel, so a factor that
  changes few of them (a small object's colour or size, a few degrees of orientation) weighs little in it,
  and a decoder that draws a blur between two neighbouring states loses almost nothing; this hinge weighs
  each neighbour's difference by its own size, so the small differences count as much as the large.
- :func:`latent_consistency`: how far rotating an encoding lands from the encoding of the frame the
  actions lead to. Encoding every frame and asking ``R_t e_(t-1) = e_t`` (and, over longer horizons,
  ``P_t P_s^T e_s = e_t``) ties together the encodings of one state reached by different paths. Random
  walks close cycles, so the rotations must satisfy the group law (``R^N = I``: faithful angles) and the
  encoder becomes a map of states. Divided by the spread of the encodings, it cannot be lowered by
  shrinking the latent cloud.
- :func:`uniformity`: ``log mean exp(-t ||e_i - e_j||^2)`` (Wang & Isola, 2020) keeps encodings spread
  over the sphere, so no factor is collapsed to lower the consistency.
- :func:`transition_smoothness` and :func:`whitening_penalty`: the spectral start. Minimising the mean
  ``||e_t - e_(t-1)||^2`` over observed transitions while the encodings stay white (zero mean, covariance
  ``I / n``) is the graph-drawing form of Laplacian eigenmaps (Wu et al., 2019): the encoder converges to
  the lowest non-constant eigenvectors of the transition graph. For factors that actions shift cyclically
  the graph is a product of cycles, whose lowest eigenvectors are the first Fourier modes
  ``(cos 2 pi x / N, sin 2 pi x / N)`` of each factor: unit norm, and every action a rotation by
  ``2 pi / N`` in its factor's plane. It needs no angles, so it breaks the chicken-and-egg of learning an
  encoder and its rotations together from a random start. These terms drive the ``"spectral"`` warm-up;
  the ``"graph"`` warm-up solves the same problem in closed form on the explored transition graph
  (:mod:`dyndis_learn.transition_graph`) and only logs them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "frame_bce",
    "latent_consistency",
    "neighbour_margin",
    "transition_smoothness",
    "uniformity",
    "whitening_penalty",
]


def frame_bce(logits: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per frame.

    Args:
        logits: Decoder logits, shape (..., H, W, C).
        frames: Targets in [0, 1], same shape.

    Returns:
        Shape (...,): the mean over pixels and channels of each frame.
    """
    return F.binary_cross_entropy_with_logits(logits, frames, reduction="none").mean(dim=(-3, -2, -1))


def neighbour_margin(logits: torch.Tensor, frames: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Hinge on how much nearer each decoded frame is to its own image than to its episode neighbours'.

    For a decoded frame ``d`` of image ``x`` and a neighbour's image ``y``,
    ``m = (||d - y||^2 - ||d - x||^2) / ||y - x||^2 = 1 - 2 <d - x, y - x> / ||y - x||^2``: 1 for a perfect
    picture, 0 where ``d`` is as near ``y`` as ``x``, negative where it is nearer ``y``. Divided by
    ``||y - x||^2``, a neighbour that differs in a few pixels counts as much as one that differs in all.
    The term is the mean of ``relu(margin - m)`` over both neighbours of every frame (frames ``t - 1`` and
    ``t + 1`` of its episode, one action away). Neighbours with identical images (``||y - x||^2 < 1e-6``)
    are left out.

    Args:
        logits: Decoder logits of every frame, shape (B, T + 1, H, W, C), ``T >= 1``.
        frames: The frames' images in [0, 1], same shape.
        margin: The ``m`` below which a pair counts.

    Returns:
        A scalar; 0 when every pair has ``m >= margin`` (or no pair differs).
    """
    errors = (torch.sigmoid(logits) - frames).flatten(2)  # d - x, shape (B, T + 1, D)
    steps = (frames[:, 1:] - frames[:, :-1]).flatten(2)  # x_(t+1) - x_t, shape (B, T, D)
    norms = steps.square().sum(-1)
    differ = norms >= 1e-6
    norms = norms.clamp_min(1e-6)
    ahead = 1 - 2 * (errors[:, :-1] * steps).sum(-1) / norms  # frame t against frame t + 1
    behind = 1 + 2 * (errors[:, 1:] * steps).sum(-1) / norms  # frame t + 1 against frame t
    shortfall = (margin - torch.stack([ahead, behind])).relu()
    pairs = 2 * differ.sum()
    return (shortfall * differ).sum() / pairs.clamp_min(1)


def latent_consistency(
    encodings: torch.Tensor, steps: torch.Tensor, paths: torch.Tensor, multistep_weight: float
) -> torch.Tensor:
    """Scale-free consistency of rotated and encoded frames.

    ``(one_step + multistep_weight * all_pairs) / spread`` where

    - ``one_step = mean_t ||R_t e_(t-1) - e_t||^2``;
    - ``all_pairs = mean_t ||u_t - mean_s u_s||^2`` with ``u_t = P_t^T e_t`` (every encoding carried back
      to the episode's start); since rotations preserve distances this is half the mean over all pairs
      ``(s, t)`` of ``||P_t P_s^T e_s - e_t||^2``: every horizon up to ``T`` at the cost of one pass;
    - ``spread = mean ||e - mean(e)||^2`` over all frames of the batch.

    Args:
        encodings: Unit vectors ``e_t``, shape (B, T + 1, n).
        steps: Step rotations ``R_t``, shape (B, T, n, n).
        paths: Path rotations ``P_t``, shape (B, T + 1, n, n).
        multistep_weight: Weight of ``all_pairs``.

    Returns:
        A scalar tensor.
    """
    predicted = (steps @ encodings[:, :-1].unsqueeze(-1)).squeeze(-1)
    one_step = (predicted - encodings[:, 1:]).square().sum(-1).mean()
    carried_back = (paths.transpose(-1, -2) @ encodings.unsqueeze(-1)).squeeze(-1)
    all_pairs = (carried_back - carried_back.mean(dim=1, keepdim=True)).square().sum(-1).mean()
    flat = encodings.reshape(-1, encodings.shape[-1])
    spread = (flat - flat.mean(dim=0)).square().sum(-1).mean()
    return (one_step + multistep_weight * all_pairs) / spread.clamp_min(1e-8)


def uniformity(encodings: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log mean_(i<j) exp(-temperature ||e_i - e_j||^2)`` over all encodings of the batch.

    Args:
        encodings: Unit vectors of shape (..., n); all leading dimensions are pooled.
        temperature: ``t > 0``.

    Returns:
        A scalar tensor; lower means more uniformly spread.
    """
    flat = encodings.reshape(-1, encodings.shape[-1])
    return torch.pdist(flat).square().mul(-temperature).exp().mean().log()


def transition_smoothness(encodings: torch.Tensor) -> torch.Tensor:
    """Mean squared distance ``||e_t - e_(t-1)||^2`` between the encodings of consecutive frames.

    Args:
        encodings: Shape (B, T + 1, n).

    Returns:
        A scalar tensor.
    """
    return (encodings[:, 1:] - encodings[:, :-1]).square().sum(-1).mean()


def whitening_penalty(encodings: torch.Tensor) -> torch.Tensor:
    """``||n C - I||_F^2 / n`` for the covariance ``C`` of the encodings (all leading dimensions pooled).

    Zero exactly when the encodings have zero mean and covariance ``I / n`` (on the unit sphere the trace
    of ``C`` is ``1 - ||mean||^2``, so a non-zero mean is penalised too); a collapse to one point scores 1.

    Args:
        encodings: Unit vectors of shape (..., n).

    Returns:
        A scalar tensor.
    """
    flat = encodings.reshape(-1, encodings.shape[-1])
    n = flat.shape[-1]
    centred = flat - flat.mean(dim=0)
    covariance = centred.T @ centred / flat.shape[0]
    eye = torch.eye(n, dtype=flat.dtype, device=flat.device)
    return (n * covariance - eye).square().sum() / n
