"""LSBD-VAE (Tonnaer et al., ICML 2022): a VAE on a product of circles, told each action's group element.

The latent space is ``(S^1)^K``, one circle per factor, embedded in R^(2K) as ``(cos th_1, sin th_1, cos th_2,
...)``: factor ``k`` lives in the plane ``(2k, 2k + 1)``. LSBD-VAE is weakly supervised: it knows the group
element of every transformation. Here that is the environment's published action map (``action_effects``):
action ``a`` turns the circle of its factor by ``direction * 2 pi / N``; the trainer hands the map to the
model before training (:meth:`LSBDVAEMethod.prepare`) and the checkpoint stores it (a buffer).

The posterior on each circle is a wrapped normal around the encoded angle with a learnt variance ``t`` (the
Brownian motion of time ``t`` on the circle, the Delta-VAE posterior of Perez Rey et al., 2019), its KL to the
uniform prior taken at its small-``t`` value ``log(2 pi) - log(2 pi e t) / 2``. Per SGD step, on every frame
of the step's episodes:

- ``autoencoder_bce``: BCE of the decoded sample against the frame (the ELBO's likelihood);
- the KL summed over circles, averaged over frames (weight 1; part of ``loss``, not logged on its own);
- ``consistency``: the LSBD loss, the dispersion ``mean_t ||g_t^-1 . u(x_t) - mean_s g_s^-1 . u(x_s)||^2`` of
  each episode's encodings carried back to its first frame by the known group elements ``g_t`` of the path,
  summed over circles; at ``loss.consistency_weight`` with the dynamics ramp.

The encoding is the embedding of the encoded angles; imagination turns each circle by the known angles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from dyndis_learn.baselines.base import BaselineMethod, LatentPredictiveModel, action_effects, all_terms
from dyndis_learn.config import TrainConfig
from dyndis_learn.losses import frame_bce
from dyndis_learn.model import encode_frames, frames_to_float
from dyndis_learn.networks import ConvDecoder, ConvEncoder
from dyndis_learn.objective import FrameTargets, LossWeights, TrainBatch
from dyndis_learn.registry import METHODS

__all__ = ["LSBDVAE", "LSBDVAEMethod", "circle_kl"]

_MIN_VARIANCE = 1e-4  # floor of the posterior's variance t (rad^2)


def circle_kl(variance: torch.Tensor) -> torch.Tensor:
    """KL of a wrapped normal of variance ``t`` on the circle to the uniform law, at small ``t``, elementwise."""
    return math.log(2 * math.pi) - 0.5 * torch.log(2 * math.pi * math.e * variance)


def _embed(angles: torch.Tensor) -> torch.Tensor:
    """Angles (..., K) -> ``(cos, sin)`` pairs (..., 2K)."""
    return torch.stack([angles.cos(), angles.sin()], dim=-1).flatten(-2)


class LSBDVAE(LatentPredictiveModel):
    """An encoder to ``K`` angles and their variances, a decoder from ``(S^1)^K`` and the known action angles.

    Args:
        image_shape: (H, W, C) of the observations.
        n_actions: Number of discrete actions.
        latent_dim: ``2K``: two dimensions per circle (even).
        channels: Encoder convolution channels (the decoder mirrors them).
        kernel_size: Convolution kernel size.
        stride: Convolution stride.
        hidden_dim: Units of the hidden fully connected layers.
        encoder_norm: One of :data:`~dyndis_learn.networks.ENCODER_NORMS` (:class:`~dyndis_learn.networks.ConvEncoder`).

    Attributes:
        action_angles: Buffer (A, K): the angle by which each action turns each circle (set by
            :meth:`LSBDVAEMethod.prepare` from the environment; zeros until then).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        n_actions: int,
        latent_dim: int = 4,
        channels: Sequence[int] = (32, 32, 64, 64),
        kernel_size: int = 4,
        stride: int = 2,
        hidden_dim: int = 256,
        encoder_norm: str = "none",
    ) -> None:
        if latent_dim % 2:
            raise ValueError(f"`latent_dim` of LSBD-VAE must be even (two dimensions per circle), got {latent_dim}.")
        super().__init__(image_shape, n_actions, latent_dim)
        self.circles = latent_dim // 2
        self.encoder = ConvEncoder(
            image_shape, 3 * self.circles, channels, kernel_size, stride, hidden_dim, encoder_norm
        )
        self.decoder = ConvDecoder(image_shape, latent_dim, channels, kernel_size, stride, hidden_dim)
        self.register_buffer("action_angles", torch.zeros(n_actions, self.circles))
        self.to(memory_format=torch.channels_last)

    def posterior(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(angles, variances)`` of the posterior on each circle for images (..., H, W, C), each (..., K)."""
        out = encode_frames(self.encoder, frames).float().unflatten(-1, (3, self.circles))
        angles = torch.atan2(out[..., 1, :], out[..., 0, :])
        return angles, torch.sigmoid(out[..., 2, :]) + _MIN_VARIANCE

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """The embedding of the posterior's angles, ``(cos th_k, sin th_k)`` per circle, shape (..., 2K)."""
        return _embed(self.posterior(frames)[0])

    def decode_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (..., 2K) -> pixel logits (..., H, W, C)."""
        batch = latents.shape[:-1]
        return self.decoder(latents.reshape(-1, self.latent_dim)).reshape(*batch, *self.image_shape)

    def step(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Turn each circle of latents (..., 2K) by the angles of actions (...)."""
        pairs = latents.reshape(*latents.shape[:-1], self.circles, 2)
        angle = self.action_angles[actions]
        cos, sin = angle.cos(), angle.sin()
        x, y = pairs[..., 0], pairs[..., 1]
        return torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1).flatten(-2)

    @torch.no_grad()
    def set_action_effects(self, effects: Sequence[Any]) -> None:
        """Set :attr:`action_angles` from the environment's ``action_effects`` (one per action).

        Factors get circles in the order of their first action; action ``a`` turns its factor's circle by
        ``direction * 2 pi / cycle_length``.

        Raises:
            ValueError: If the effects do not describe the model's actions, or the factors are not ``K``.
        """
        if len(effects) != self.n_actions:
            raise ValueError(f"`effects` must describe the model's {self.n_actions} actions, got {len(effects)}.")
        names = list(dict.fromkeys(e.factor for e in effects))
        if len(names) != self.circles:
            raise ValueError(
                f"ModelConfig.latent_dim must be 2 x the number of factors the actions move ({len(names)}: {names}) "
                f"for LSBD-VAE, got {self.latent_dim}."
            )
        angles = torch.zeros_like(self.action_angles)
        for a, effect in enumerate(effects):
            angles[a, names.index(effect.factor)] = int(effect.direction) * 2 * math.pi / int(effect.cycle_length)
        self.action_angles.copy_(angles)


@METHODS.register("lsbd-vae")
class LSBDVAEMethod(BaselineMethod):
    """The LSBD-VAE objective (module docstring): the ELBO on ``(S^1)^K`` plus the LSBD loss."""

    model_class = LSBDVAE

    def prepare(self, model: LSBDVAE, config: TrainConfig, env: Any) -> None:
        """No warm-up, and the known action angles from ``env.action_effects`` (ValueError without them)."""
        super().prepare(model, config, env)
        effects = action_effects(env)
        if effects is None:
            raise ValueError(
                f"LSBD-VAE needs each action's group element: the environment {config.env.id!r} publishes no "
                "`action_effects`."
            )
        model.set_action_effects(effects)

    def terms(
        self, model: LSBDVAE, batch: TrainBatch, weights: LossWeights, targets: FrameTargets | None
    ) -> dict[str, torch.Tensor]:
        """Reconstruction BCE, KL and LSBD dispersion; the noise comes from torch's global RNG."""
        frames, actions = batch.frames, batch.actions
        angles, variances = model.posterior(frames)  # (B, T + 1, K)
        sample = angles + torch.randn_like(angles) * variances.sqrt()
        bce = frame_bce(model.decode_logits(_embed(sample)).float(), frames_to_float(frames)).mean()
        kl = circle_kl(variances).sum(-1).mean()
        loss = weights.autoencoder * bce + kl
        dispersion = angles.new_zeros(())
        if actions.shape[1] > 0:
            paths = torch.cat([torch.zeros_like(angles[:, :1]), model.action_angles[actions].cumsum(dim=1)], dim=1)
            back = torch.stack([(angles - paths).cos(), (angles - paths).sin()], dim=-1)  # (B, T + 1, K, 2)
            dispersion = (back - back.mean(dim=1, keepdim=True)).square().sum(dim=(-1, -2)).mean()
            if weights.consistency != 0:
                loss = loss + weights.consistency * dispersion
        return all_terms(loss, autoencoder_bce=bce, consistency=dispersion)
