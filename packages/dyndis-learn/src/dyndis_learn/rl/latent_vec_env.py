"""An SB3 ``VecEnvWrapper`` that encodes the image observations of all sub-envs in one batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn, VecEnvWrapper

from dyndis_learn.model import synthesis_modes_for
from dyndis_learn.wrappers import MAX_GOAL_STATES, LatentGoalReward, encode_images, is_goal_space, latent_space

__all__ = ["VecLatentObservation"]

#: The goal methods the wrapper answers itself instead of the sub-envs (which compare images).
_GOAL_METHODS = ("compute_reward", "compute_terminated")


class VecLatentObservation(VecEnvWrapper):
    """Replace every sub-env's image by its latent vector (``model.encode``), batched.

    ``infos[i]["terminal_observation"]`` is encoded as well, so off-policy algorithms bootstrap from latents.
    Goal tasks' Dict observations have each image encoded; the wrapper then answers ``compute_reward`` and
    ``compute_terminated`` on latent goals itself, also through ``env_method`` as SB3's HER calls them, with
    the rule of :class:`~dyndis_learn.wrappers.LatentGoalReward` (the sub-envs' state space is read from
    sub-env 0, which every sub-env must share).

    Args:
        venv: An SB3 VecEnv with uint8 image observations (e.g. :func:`~dyndis_learn.rl.make_sb3_vec_env`),
            or Dict observations of them (e.g. a ``DummyVecEnv`` of ``DynDis/<Name>Goal-v0`` envs).
        model: A trained world model (``encode``, ``latent_dim``, ``image_shape``).
        goal_threshold: None for the nearest-state rule of latent goals, or a distance for the threshold rule.
        max_goal_states: The most states the nearest-state rule encodes.
        synthesis_modes: Which encodings, as :class:`~dyndis_learn.wrappers.LatentObservation` takes it (1, the
            encoder's own, by default).
    """

    def __init__(
        self,
        venv: VecEnv,
        model: Any,
        *,
        goal_threshold: float | None = None,
        max_goal_states: int = MAX_GOAL_STATES,
        synthesis_modes: int | str = 1,
    ) -> None:
        self.model = model.eval()
        self.synthesis_modes = synthesis_modes_for(model, synthesis_modes)
        super().__init__(venv, observation_space=latent_space(venv.observation_space, model, "venv"))
        self.goal_reward: LatentGoalReward | None = None
        if is_goal_space(venv.observation_space):
            self.goal_reward = LatentGoalReward(
                self.model,
                lambda name: venv.get_attr(name, indices=[0])[0],
                threshold=goal_threshold,
                max_states=max_goal_states,
                synthesis_modes=self.synthesis_modes,
            )

    def _encode(self, obs: Any) -> Any:
        if isinstance(obs, dict):
            return {key: encode_images(self.model, value, self.synthesis_modes) for key, value in obs.items()}
        return encode_images(self.model, obs, self.synthesis_modes)

    def reset(self) -> Any:
        """Reset and encode."""
        return self._encode(self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        """Step and encode (the terminal observations too)."""
        obs, rewards, dones, infos = self.venv.step_wait()
        finished = [i for i, info in enumerate(infos) if "terminal_observation" in info]
        if finished:  # one batched encode for all episodes that ended in this step
            terminal = [infos[i]["terminal_observation"] for i in finished]
            if isinstance(terminal[0], dict):
                stacked: Any = {key: np.stack([t[key] for t in terminal]) for key in terminal[0]}
                latents = self._encode(stacked)
                for j, i in enumerate(finished):
                    infos[i]["terminal_observation"] = {key: value[j] for key, value in latents.items()}
            else:
                for i, latent in zip(finished, self._encode(np.stack(terminal))):
                    infos[i]["terminal_observation"] = latent
        return self._encode(obs), rewards, dones, infos

    def _goals(self) -> LatentGoalReward:
        if self.goal_reward is None:
            raise TypeError("`venv` is not a goal env: it has no `achieved_goal` / `desired_goal` to compare.")
        return self.goal_reward

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> npt.NDArray[np.float64] | float:
        """1.0 where the achieved latent goal reaches the desired one, over leading batch dimensions (..., n)."""
        return self._goals().compute_reward(achieved_goal, desired_goal, info)

    def compute_terminated(self, achieved_goal: Any, desired_goal: Any, info: Any) -> npt.NDArray[np.bool_] | bool:
        """Whether the achieved latent goal reaches the desired one, vectorised like :meth:`compute_reward`."""
        return self._goals().compute_terminated(achieved_goal, desired_goal, info)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """The sub-envs' method; ``compute_reward`` and ``compute_terminated`` on latent goals answered here."""
        if method_name in _GOAL_METHODS and self.goal_reward is not None:
            result = getattr(self, method_name)(*method_args, **method_kwargs)
            return [result for _ in self._get_indices(indices)]
        return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)
