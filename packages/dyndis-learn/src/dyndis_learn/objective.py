"""The training objective: every loss term of one SGD step and their weighted sum, as pure functions.

Notation (:mod:`dyndis_learn.losses` holds the terms themselves): ``B`` episodes of ``T`` steps, encodings
``e_t = enc(x_t)``, step rotations ``R_t = R(a_t)`` and path rotations ``P_t = R_t ... R_1``. For one
:class:`TrainBatch`, :func:`terms` computes

- ``autoencoder_bce``: BCE of ``decode(e_t)`` against ``x_t``, over the frames decoded from their encoding;
- ``rollout_bce``: BCE of ``decode(P_t e_0)`` against ``x_t`` (the design's rollout loss), over the frames
  the batch decodes from the rollout (:func:`decoding_choice`);
- ``neighbour_margin``: whether each decoded frame ``x_0 .. x_T`` (from its encoding or the rollout, as the
  batch chose; with ``decode_twice``, the decodings of the encodings) is nearer its own image than its
  episode neighbours' (:func:`~dyndis_learn.losses.neighbour_margin`; batches of episodes only, and
  computed only where it has weight: it trains the decoder and says little in a log);
- ``consistency``: rotated vs encoded frames (:func:`~dyndis_learn.losses.latent_consistency`);
- ``smoothness`` and ``whitening``: the spectral terms;
- ``uniformity``: the spread of the encodings over the sphere;
- ``target``: ``mean ||e - y||^2`` to given per-frame target encodings (a warm-up's map); for a model with
  ``angle_bins``, of its bins' mean points, plus the cross-entropy against each target's angle bin
  (:func:`target_term`);
- ``regularizer``: the entanglement penalty on the angles;

and ``loss``, the sum of every term weighted by :class:`LossWeights`. A term whose weight is 0 is computed
for the log only (where it is defined), outside the gradient. Where every frame is decoded from the
rollout and no weighted term reads a later frame's encoding (the paper's objective), only ``x_0`` is
encoded, as the paper does: the gradients are the same, the encoder's cost is ``1 / (T + 1)``, and the
zero-weight ``whitening`` and ``uniformity`` are logged over the first frames (``smoothness`` and
``consistency`` as 0). Under an autocast (the trainer's
``TrainConfig.bf16``) only the encoder and decoder run in lower precision; their outputs come back as
float32 and everything else stays float32. Nothing here changes the model: the same
function serves every phase, and the phases differ only in their batches, weights and targets.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from dyndis_learn.losses import (
    frame_bce,
    latent_consistency,
    neighbour_margin,
    transition_smoothness,
    uniformity,
    whitening_penalty,
)
from dyndis_learn.model import WorldModel, encode_frames, frames_to_float
from dyndis_learn.regularizers import entanglement_penalty
from dyndis_learn.rotations import cumulative_rotations

__all__ = [
    "TERMS",
    "WARMUP_TERMS",
    "FrameTargets",
    "LossWeights",
    "TrainBatch",
    "decoding_choice",
    "target_term",
    "terms",
]

#: The loss terms, in the order they are summed into ``"loss"``.
TERMS = (
    "autoencoder_bce",
    "rollout_bce",
    "neighbour_margin",
    "consistency",
    "smoothness",
    "whitening",
    "uniformity",
    "target",
    "regularizer",
)

#: The terms that only a warm-up gives a weight (:attr:`dyndis_learn.warmups.Warmup.terms`); without it they
#: are computed for the log only.
WARMUP_TERMS = ("smoothness", "whitening", "target")


class TrainBatch(NamedTuple):
    """The data of one SGD step.

    Attributes:
        frames: uint8 images, shape (B, T + 1, H, W, C); ``T = 0`` for a batch of single states.
        actions: int64, shape (B, T); ``actions[:, t]`` leads from frame ``t`` to frame ``t + 1``.
        from_rollout: bool, shape (B, T): which frames ``t >= 1`` are decoded from ``P_t e_0`` rather than
            from their own encoding (:func:`decoding_choice`); None decodes every frame from its encoding.
        decode_twice: Decode the frames chosen by ``from_rollout`` from their encoding too.
    """

    frames: torch.Tensor
    actions: torch.Tensor
    from_rollout: torch.Tensor | None = None
    decode_twice: bool = False


class FrameTargets(NamedTuple):
    """Target encodings of the frames of a batch (a warm-up's map of the states).

    Attributes:
        encodings: One target per known state, shape (S, n).
        states: Index into ``encodings`` of each frame's state, shape (B, T + 1); -1 for an unknown state.
        lookup: Whether an angle-bin decoder's look-up reads the targets of the frames decoded from their own
            encodings (``warmup.cycles.decoder_reads_targets``).
    """

    encodings: torch.Tensor
    states: torch.Tensor
    lookup: bool = False


@dataclass(frozen=True)
class LossWeights:
    """The weight of every term at one step (schedules already applied), and the terms' own settings."""

    autoencoder: float = 1.0
    rollout: float = 0.0
    neighbour_margin: float = 0.0
    consistency: float = 0.0
    smoothness: float = 0.0
    whitening: float = 0.0
    uniformity: float = 0.0
    target: float = 0.0
    regularizer: float = 0.0
    multistep: float = 0.3
    """Weight of the all-pairs consistency relative to the one-step consistency."""
    margin: float = 0.5
    """The margin of the neighbour-margin term (:func:`~dyndis_learn.losses.neighbour_margin`)."""
    uniformity_temperature: float = 2.0
    """Temperature of the uniformity term."""
    regularizer_target: str = "min"
    """Target of the entanglement penalty (``"min"``, ``"max"`` or ``"value"``)."""
    regularizer_value: float = 0.0
    """Target entanglement for ``regularizer_target="value"``."""

    def of(self, term: str) -> float:
        """The weight of ``term`` (one of :data:`TERMS`)."""
        return float(getattr(self, term.removesuffix("_bce")))


def decoding_choice(batch_size: int, steps: int, *, split: bool, seed: int, step: int, stream: int) -> torch.Tensor:
    """Which frames ``t >= 1`` a batch decodes from the rollout: all, or half of them at random.

    Args:
        batch_size: Episodes ``B``.
        steps: Steps ``T`` per episode.
        split: Decode each frame once, from the rollout or from its encoding with even odds (half the
            decoder cost); False chooses every frame (to be decoded from both, see :class:`TrainBatch`).
        seed: The run's seed.
        step: The SGD step: the draw is a function of (seed, step, stream) alone, so a resumed run draws
            the same frames.
        stream: Entropy tag that keeps this draw apart from the run's other random streams.

    Returns:
        bool, shape (B, T).
    """
    if not split:
        return torch.ones(batch_size, steps, dtype=torch.bool)
    coin = np.random.default_rng([seed, step, stream]).random((batch_size, steps))
    return torch.from_numpy(coin < 0.5)


def _float32(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Leave an enclosing autocast on ``device`` (e.g. the trainer's bfloat16 one), if there is one."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def target_term(
    model: WorldModel, encodings: torch.Tensor, outputs: torch.Tensor | None, wanted: torch.Tensor
) -> torch.Tensor:
    """The ``target`` term of frames with a target: ``mean ||e - y||^2``, and with angle bins a classification.

    With ``model.angle_bins`` the distance is that of each circle's mean bin point
    (:meth:`~dyndis_learn.model.WorldModel.angle_mean_points`), not of its projection onto the circle, whose
    gradient grows as one over the mean point's radius while the distribution is spread and drowned the
    cross-entropy (:meth:`~dyndis_learn.model.WorldModel.angle_cross_entropy`) that is added to it: a regression
    onto many unrelated values (Cars3D's cars) learns nothing, a classification does.

    Args:
        model: The model.
        encodings: The frames' encodings, shape (B, n).
        outputs: The encoder's outputs of the same frames (B, m) for a model with angle bins, else None.
        wanted: The target encodings, shape (B, n).
    """
    if outputs is None:
        return (encodings - wanted).square().sum(-1).mean()
    distance = (model.angle_mean_points(outputs) - wanted).square().sum(-1).mean()
    return distance + model.angle_cross_entropy(outputs, wanted)


def terms(
    model: WorldModel, batch: TrainBatch, weights: LossWeights, targets: FrameTargets | None = None
) -> dict[str, torch.Tensor]:
    """Every term of the objective on ``batch`` (see the module docstring), and their weighted sum ``"loss"``.

    Args:
        model: The world model (not changed).
        batch: The step's frames, actions and decoding choice.
        weights: The terms' weights at this step.
        targets: Target encodings of the batch's frames, for the ``target`` term (zero without them).

    Returns:
        Scalar tensors named as :data:`TERMS`, plus ``"loss"``.
    """
    frames, actions = batch.frames, batch.actions
    batch_size, n_frames = frames.shape[:2]
    device = frames.device
    images = frames_to_float(frames)
    dynamics = n_frames > 1 and (weights.rollout > 0 or weights.consistency > 0)
    from_rollout = batch.from_rollout
    if from_rollout is None or not dynamics or weights.rollout == 0:
        from_rollout = torch.zeros(batch_size, n_frames - 1, dtype=torch.bool, device=device)
    # Every frame decoded from the rollout and no weighted term on later encodings (the paper's objective):
    # encode x_0 alone, as the paper does; the zero-weight terms are then logged over the first frames.
    first_only = (  # the tensor test last: on a GPU it waits for the device
        n_frames > 1
        and not batch.decode_twice
        and targets is None
        and weights.consistency == weights.smoothness == weights.whitening == weights.uniformity == 0
        and bool(from_rollout.all())
    )
    encoded = frames[:, :1] if first_only else frames
    outputs = None  # the encoder's own outputs, where the target term needs them (angle bins)
    if model.angle_bins is None:
        encodings = model.encode(encoded).float()  # (B, T + 1 or 1, n); float32 under a bfloat16 autocast too
    else:
        outputs = encode_frames(model.encoder, encoded).float()
        with _float32(device):  # the bins' softmax and circular means: float32 under an autocast too
            encodings = model.latents(outputs)
    zero = encodings.new_zeros(())

    with _float32(device):  # the rotations and every term but the networks' stay float32 under an autocast
        if dynamics:
            steps = model.rotations.matrices()[actions]  # (B, T, n, n)
            paths = cumulative_rotations(steps)  # (B, T + 1, n, n)

        # Decode every frame from its encoding, or from the rollout P_t e_0 where the batch says so (and, with
        # decode_twice, from both).
        if from_rollout.any():
            rolled = (paths[:, 1:] @ encodings[:, :1].unsqueeze(-1)).squeeze(-1)  # P_t e_0, t = 1 .. T
        if not batch.decode_twice or not from_rollout.any():
            if first_only:
                latents = torch.cat([encodings, rolled], dim=1)
            elif from_rollout.any():
                later = torch.where(from_rollout[..., None], rolled, encodings[:, 1:])
                latents = torch.cat([encodings[:, :1], later], dim=1)
            else:
                latents = encodings
            decoded_targets = images
            first = torch.zeros(batch_size, 1, dtype=torch.bool, device=device)
            is_rollout = torch.cat([first, from_rollout], dim=1)
        else:
            latents = torch.cat([encodings, rolled], dim=1)
            decoded_targets = torch.cat([images, images[:, 1:]], dim=1)
            encoded = torch.zeros(batch_size, n_frames, dtype=torch.bool, device=device)
            is_rollout = torch.cat([encoded, from_rollout], dim=1)
    lookup = None
    if targets is not None and targets.lookup and model.angle_bins is not None:
        # The frames x_0 .. x_T decoded from their own encoding read their known place in the look-up.
        known = (targets.states >= 0) & ~is_rollout[:, :n_frames]
        lookup = latents.clone()
        lookup[:, :n_frames][known] = targets.encodings[targets.states[known]].to(latents.dtype)
    logits = model.decode_logits(latents, lookup).float()
    bce = frame_bce(logits, decoded_targets)

    with _float32(device):
        margin = zero
        if n_frames > 1 and weights.neighbour_margin > 0:  # the first T + 1 decoded frames are x_0 .. x_T
            margin = neighbour_margin(logits[:, :n_frames], images, weights.margin)
        target = zero
        if targets is not None:
            seen = targets.states >= 0
            if seen.any():
                wanted = targets.encodings[targets.states[seen]]
                target = target_term(model, encodings[seen], None if outputs is None else outputs[seen], wanted)

        values = {
            "autoencoder_bce": bce[~is_rollout].mean(),
            "rollout_bce": bce[is_rollout].mean() if is_rollout.any() else zero,
            "neighbour_margin": margin,
            "consistency": (
                latent_consistency(encodings, steps, paths, weights.multistep) if dynamics and not first_only else zero
            ),
            "smoothness": transition_smoothness(encodings) if encodings.shape[1] > 1 else zero,
            "whitening": whitening_penalty(encodings),
            "uniformity": uniformity(encodings, weights.uniformity_temperature),
            "target": target,
            "regularizer": entanglement_penalty(
                model.rotations.angles, weights.regularizer_target, weights.regularizer_value
            ),
        }
        loss = zero
        for name in TERMS:
            weight = weights.of(name)
            if weight != 0:
                loss = loss + weight * values[name] if loss is not zero else weight * values[name]
        values["loss"] = loss
    return values
