"""The Forward-VAE of Caselles-Dupré et al. (NeurIPS 2019): a VAE with a learnt linear map per action.

A Gaussian VAE (encoder to the mean ``mu`` and log-variance of ``q(z | x)``, standard normal prior, Bernoulli
decoder) whose latent space carries one learnt matrix ``A(a)`` (n x n, unconstrained, initialised at the
identity) per action. Per SGD step, on every frame of the step's episodes:

- ``autoencoder_bce``: BCE of ``decode(z_t)`` against ``x_t``, ``z_t = mu_t + sigma_t * eps`` (reparametrised);
- KL of ``q(z | x_t)`` to the prior, summed over dimensions and averaged over frames (weight 1, the plain
  VAE's; part of ``loss``, not logged on its own: the log has no column for it);
- ``consistency``: the forward model's ``mean ||A(a_t) mu_t - mu_(t+1)||^2`` over the transitions, at the
  configured ``loss.consistency_weight`` with the dynamics ramp.

The encoding is ``mu``; imagination is the latent rollout ``z_t = A(a_t) z_(t-1)`` from ``mu_0``, decoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dyndis_learn.baselines.base import BaselineMethod, LatentPredictiveModel, all_terms
from dyndis_learn.losses import frame_bce
from dyndis_learn.model import encode_frames, frames_to_float
from dyndis_learn.networks import ConvDecoder, ConvEncoder
from dyndis_learn.objective import FrameTargets, LossWeights, TrainBatch
from dyndis_learn.registry import METHODS

__all__ = ["ForwardVAE", "ForwardVAEMethod", "gaussian_kl"]


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(log_var)) || N(0, I))`` summed over the last dimension, shape (...)."""
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(-1)


class ForwardVAE(LatentPredictiveModel):
    """VAE encoder and decoder, and one linear map ``A(a)`` of the latent space per action.

    Args:
        image_shape: (H, W, C) of the observations.
        n_actions: Number of discrete actions.
        latent_dim: Dimension ``n`` of the latent space.
        channels: Encoder convolution channels (the decoder mirrors them).
        kernel_size: Convolution kernel size.
        stride: Convolution stride.
        hidden_dim: Units of the hidden fully connected layers.
        encoder_norm: One of :data:`~dyndis_learn.networks.ENCODER_NORMS` (:class:`~dyndis_learn.networks.ConvEncoder`).
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
        super().__init__(image_shape, n_actions, latent_dim)
        self.encoder = ConvEncoder(image_shape, 2 * latent_dim, channels, kernel_size, stride, hidden_dim, encoder_norm)
        self.decoder = ConvDecoder(image_shape, latent_dim, channels, kernel_size, stride, hidden_dim)
        self.action_maps = torch.nn.Parameter(torch.eye(latent_dim).repeat(n_actions, 1, 1))
        self.to(memory_format=torch.channels_last)

    def posterior(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_var)`` of ``q(z | x)`` for images (..., H, W, C), each of shape (..., n)."""
        mean, log_var = encode_frames(self.encoder, frames).chunk(2, dim=-1)
        return mean, log_var

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """The posterior mean ``mu`` (..., n)."""
        return self.posterior(frames)[0]

    def decode_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (..., n) -> pixel logits (..., H, W, C)."""
        batch = latents.shape[:-1]
        return self.decoder(latents.reshape(-1, self.latent_dim)).reshape(*batch, *self.image_shape)

    def step(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``A(a) z`` for latents (..., n) and actions (...)."""
        return (self.action_maps[actions] @ latents.unsqueeze(-1)).squeeze(-1)


@METHODS.register("forward-vae")
class ForwardVAEMethod(BaselineMethod):
    """The Forward-VAE objective (module docstring): ELBO on every frame plus the latent forward model."""

    model_class = ForwardVAE

    def terms(
        self, model: ForwardVAE, batch: TrainBatch, weights: LossWeights, targets: FrameTargets | None
    ) -> dict[str, torch.Tensor]:
        """Reconstruction BCE, KL and forward term; the noise comes from torch's global RNG (seeded, checkpointed)."""
        frames, actions = batch.frames, batch.actions
        mean, log_var = (part.float() for part in model.posterior(frames))
        sample = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        bce = frame_bce(model.decode_logits(sample).float(), frames_to_float(frames)).mean()
        kl = gaussian_kl(mean, log_var).mean()
        loss = weights.autoencoder * bce + kl
        forward = mean.new_zeros(())
        if actions.shape[1] > 0:
            forward = (model.step(mean[:, :-1], actions) - mean[:, 1:]).square().sum(-1).mean()
            if weights.consistency != 0:
                loss = loss + weights.consistency * forward
        return all_terms(loss, autoencoder_bce=bce, consistency=forward)
