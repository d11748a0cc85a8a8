"""Gymnasium observation wrappers that replace images by their learned latent vectors.

For agents outside Stable-Baselines3: the encoder of a trained world model becomes a compact state.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch
from gymnasium import spaces

__all__ = ["FactorOneHotObservation", "LatentObservation", "encode_images"]


@torch.no_grad()
def encode_images(model: Any, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Latent vectors of uint8 images of shape (..., H, W, C) -> float32 (..., n), on the unit sphere."""
    device = next(model.parameters()).device
    return model.encode(torch.as_tensor(np.asarray(images), device=device)).cpu().numpy().astype(np.float32)


class LatentObservation(gym.ObservationWrapper):
    """Replace every image observation by ``model.encode(image)``, a float32 vector on the unit sphere.

    Works on image (Box) observations and on Goal tasks' Dict observations (each image key is encoded).
    The model is put in eval mode and never trained here.

    Args:
        env: An environment with uint8 image observations.
        model: A trained world model (``encode(uint8 (..., H, W, C)) -> (..., n)``, ``latent_dim``).
    """

    def __init__(self, env: gym.Env, model: Any) -> None:
        super().__init__(env)
        self.model = model.eval()
        latent = spaces.Box(-1.0, 1.0, (model.latent_dim,), np.float32)
        space = env.observation_space
        if isinstance(space, spaces.Dict):
            self.observation_space = spaces.Dict({key: latent for key in space.spaces})
        elif isinstance(space, spaces.Box) and space.dtype == np.uint8 and space.shape[-3:] == tuple(model.image_shape):
            self.observation_space = latent
        else:
            raise ValueError(
                f"`env` must have uint8 image observations of shape {tuple(model.image_shape)} (or a Dict of them) "
                f"to match the model, got {space}."
            )

    def observation(self, observation: Any) -> Any:
        """Encode the image (or each image of a Dict observation)."""
        if isinstance(observation, dict):
            return {key: encode_images(self.model, value) for key, value in observation.items()}
        return encode_images(self.model, observation)


class FactorOneHotObservation(gym.Wrapper):
    """Replace the image by the one-hot encoding of the true factors (``info["factors"]``).

    A ground-truth baseline for RL comparisons (the best state a learned encoder could give); not a
    learner's input. The observation concatenates one one-hot vector per factor with more than one value.

    Args:
        env: A DynDis factor environment (``env.unwrapped.factor_space``), possibly wrapped.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.unwrapped.factor_space
        self._active = list(space.active)
        self._offsets = np.cumsum([0] + [space.sizes[k] for k in self._active])[:-1]
        size = int(sum(space.sizes[k] for k in self._active))
        self.observation_space = spaces.Box(0.0, 1.0, (size,), np.float32)

    def _one_hot(self, factors: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        out = np.zeros(self.observation_space.shape, dtype=np.float32)
        out[self._offsets + factors[self._active]] = 1.0
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset and return the one-hot factors."""
        _, info = self.env.reset(seed=seed, options=options)
        return self._one_hot(info["factors"]), info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step and return the one-hot factors."""
        _, reward, terminated, truncated, info = self.env.step(action)
        return self._one_hot(info["factors"]), reward, terminated, truncated, info
