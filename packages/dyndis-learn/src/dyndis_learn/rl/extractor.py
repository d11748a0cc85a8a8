"""A Stable-Baselines3 features extractor made of a trained world model's encoder."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["LatentFeaturesExtractor"]


class LatentFeaturesExtractor(BaseFeaturesExtractor):
    """Encode image observations with the encoder of a saved :class:`~dyndis_learn.Learner`.

    Frozen by default: its parameters get no gradients and it stays in eval mode even when SB3 switches
    the policy to training mode. With ``fine_tune=True`` the encoder trains with the policy. The features
    are the latent points on the unit sphere, ``features_dim = latent_dim``.

    SB3 stores ``model_path`` with the policy's keyword arguments and the encoder's weights (fine-tuned or
    not) with the policy's parameters, so a saved agent loads with the same weights.

    Args:
        observation_space: The image space as SB3 passes it (channels first after ``VecTransposeImage``,
            or channels last).
        model_path: A file written by :meth:`dyndis_learn.Learner.save` (or a run's checkpoint).
        fine_tune: Train the encoder with the policy.

    Example:
        >>> policy_kwargs = {"features_extractor_class": LatentFeaturesExtractor,
        ...                  "features_extractor_kwargs": {"model_path": "runs/gridworld/model.safetensors"}}
        >>> agent = PPO("CnnPolicy", env, policy_kwargs=policy_kwargs)  # doctest: +SKIP
    """

    def __init__(self, observation_space: spaces.Box, model_path: str | os.PathLike[str], fine_tune: bool = False):
        from dyndis_learn.api import load_model  # the checkpoint brings the model's configuration

        model = load_model(model_path)  # not Learner.load: that would reset the policy's seed and threads
        image_shape = tuple(model.image_shape)  # (H, W, C)
        shape = tuple(observation_space.shape)
        channels_first = (image_shape[2], image_shape[0], image_shape[1])
        if shape not in (image_shape, channels_first):
            raise ValueError(
                f"The observation space {shape} does not match the model's images {image_shape} "
                f"(or {channels_first} channels first)."
            )
        super().__init__(observation_space, features_dim=model.latent_dim)
        self.channels_first = shape == channels_first and shape != image_shape
        self.fine_tune = bool(fine_tune)
        # A submodule: SB3's ``policy.to(device)`` moves it, and ``_encode`` runs this very module (the rest
        # of the world model, unused here, stays on the CPU).
        self.encoder = model.encoder
        self._encode = model.encode  # the encoder followed by the projection onto the sphere
        self.encoder.requires_grad_(self.fine_tune)
        self.train(False)

    def apply(self, fn: Callable[[nn.Module], None]) -> LatentFeaturesExtractor:
        """Apply ``fn`` to nothing: the trained encoder must not be re-initialised.

        SB3's actor-critic policies call ``features_extractor.apply(init_weights)`` (orthogonal init) when
        they are built; that would silently overwrite the loaded weights.
        """
        return self

    def train(self, mode: bool = True) -> LatentFeaturesExtractor:
        """Switch to training mode, except a frozen encoder, which always stays in eval mode."""
        super().train(mode)
        if not self.fine_tune:
            self.encoder.eval()
        return self

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) or (B, H, W, C), as SB3 preprocessed them (floats in [0, 1]) -> (B, latent_dim)."""
        if self.channels_first:
            observations = observations.permute(0, 2, 3, 1)
        if self.fine_tune:
            return self._encode(observations)
        with torch.no_grad():
            return self._encode(observations)
