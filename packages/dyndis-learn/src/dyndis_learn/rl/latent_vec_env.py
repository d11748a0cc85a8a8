"""An SB3 ``VecEnvWrapper`` that encodes the image observations of all sub-envs in one batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn, VecEnvWrapper

from dyndis_learn.wrappers import encode_images

__all__ = ["VecLatentObservation"]


class VecLatentObservation(VecEnvWrapper):
    """Replace every sub-env's image by its latent vector (``model.encode``), batched.

    ``infos[i]["terminal_observation"]`` is encoded as well, so off-policy algorithms bootstrap from latents.

    Args:
        venv: An SB3 VecEnv with uint8 image observations (e.g. :func:`~dyndis_learn.rl.make_sb3_vec_env`).
        model: A trained world model (``encode``, ``latent_dim``, ``image_shape``).
    """

    def __init__(self, venv: VecEnv, model: Any) -> None:
        space = venv.observation_space
        if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and space.shape == tuple(model.image_shape)):
            raise ValueError(
                f"`venv` must have uint8 image observations of shape {tuple(model.image_shape)} to match the model, "
                f"got {space}."
            )
        self.model = model.eval()
        super().__init__(venv, observation_space=spaces.Box(-1.0, 1.0, (model.latent_dim,), np.float32))

    def reset(self) -> npt.NDArray[np.float32]:
        """Reset and encode."""
        return encode_images(self.model, self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        """Step and encode (the terminal observations too)."""
        obs, rewards, dones, infos = self.venv.step_wait()
        finished = [i for i, info in enumerate(infos) if "terminal_observation" in info]
        if finished:  # one batched encode for all episodes that ended in this step
            latents = encode_images(self.model, np.stack([infos[i]["terminal_observation"] for i in finished]))
            for i, latent in zip(finished, latents):
                infos[i]["terminal_observation"] = latent
        return encode_images(self.model, obs), rewards, dones, infos
