"""Stable-Baselines3 ``VecEnv`` over a natively batched Gymnasium ``VectorEnv``.

SB3 does not accept Gymnasium vector envs: its ``VecEnv`` returns a 4-tuple, autoresets in the same step
and puts the last observation of an episode in ``infos[i]["terminal_observation"]``. The adapter converts at
that boundary only; the vector env underneath runs with ``autoreset_mode=SAME_STEP``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

__all__ = ["SB3VecEnv", "make_sb3_vec_env", "split_vector_infos"]


def split_vector_infos(infos: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Turn a Gymnasium vector ``infos`` dict (arrays plus ``_key`` masks) into one dict per sub-env."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(num_envs, dtype=bool))
        per_env = split_vector_infos(value, num_envs) if isinstance(value, dict) else value
        for i in np.flatnonzero(mask):
            out[i][key] = per_env[i]
    return out


class SB3VecEnv(VecEnv):
    """Present a Gymnasium ``VectorEnv`` with same-step autoreset as an SB3 ``VecEnv``.

    Args:
        vector_env: A Gymnasium vector env whose ``metadata["autoreset_mode"]`` is ``SAME_STEP`` (make it
            with :func:`make_sb3_vec_env`).

    Each info dict holds the vector env's per-env info, plus, as SB3's ``DummyVecEnv`` gives them,
    ``"TimeLimit.truncated"`` (truncated and not terminated) and, at the end of an episode,
    ``"terminal_observation"``.
    """

    def __init__(self, vector_env: gym.vector.VectorEnv) -> None:
        mode = vector_env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"`vector_env` must autoreset in the same step (autoreset_mode=SAME_STEP) as SB3 expects, got {mode!r}."
            )
        self.vector_env = vector_env
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)
        self._actions: npt.NDArray[Any] | None = None

    def reset(self) -> npt.NDArray[Any]:
        """Reset every sub-env, with the seeds and options set by :meth:`seed` / :meth:`set_options`."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = None
        if any(self._options):
            if any(set(o) != {"factors"} for o in self._options):
                raise ValueError(f"Only per-env 'factors' reset options are supported, got {self._options!r}.")
            options = {"factors": np.stack([np.asarray(o["factors"]) for o in self._options])}
        obs, infos = self.vector_env.reset(seed=seeds, options=options)
        self.reset_infos = split_vector_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: npt.NDArray[Any]) -> None:
        """Store the actions of the next :meth:`step_wait`."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step all sub-envs; finished episodes reset at once, their last frame in ``terminal_observation``."""
        if self._actions is None:
            raise RuntimeError("Call `step_async(actions)` before `step_wait()`.")
        obs, rewards, terminated, truncated, infos = self.vector_env.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        step_infos = split_vector_infos(infos, self.num_envs)
        if dones.any():
            final_infos = split_vector_infos(infos["final_info"], self.num_envs)
            for i in np.flatnonzero(dones):
                # SB3 returns the finished episode's info; the reset's info goes to reset_infos
                self.reset_infos[i] = {k: v for k, v in step_infos[i].items() if not k.startswith("final_")}
                step_infos[i] = {**final_infos[i], "terminal_observation": infos["final_obs"][i]}
        for i, info in enumerate(step_infos):
            info.pop("final_obs", None)
            info.pop("final_info", None)
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, step_infos

    def close(self) -> None:
        """Close the vector env."""
        self.vector_env.close()

    # -- attribute access: the native vector env's sub-envs share one template env ---------------------------

    def _template(self) -> Any:
        return getattr(self.vector_env.unwrapped, "env", self.vector_env.unwrapped)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the (shared) single env, once per selected sub-env."""
        value = getattr(self._template(), attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Not supported: the sub-envs of a native vector env share one template env."""
        raise NotImplementedError(
            "The sub-envs of a native vector env share one template env; set attributes on it directly."
        )

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of the (shared) single env, once per selected sub-env."""
        method = getattr(self._template(), method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Native sub-envs are never wrapped."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[npt.NDArray[np.uint8] | None]:
        """The current frame of every sub-env (needs ``render_mode="rgb_array"``)."""
        frames = self.vector_env.render()
        return list(frames) if frames is not None else [None] * self.num_envs


def make_sb3_vec_env(env_id: str, n_envs: int = 1, seed: int | None = None, **env_kwargs: Any) -> SB3VecEnv:
    """Build a DynDis id's native vector env (same-step autoreset) as an SB3 ``VecEnv``.

    Args:
        env_id: A registered id with a vector entry point, e.g. ``"DynDis/GridWorldReach-v0"``.
        n_envs: Number of sub-envs.
        seed: Seed of the first reset (sub-env ``i`` gets ``seed + i``, as with SB3's ``make_vec_env``).
        **env_kwargs: Keyword arguments of the environment.
    """
    vector_env = gym.make_vec(
        env_id,
        num_envs=n_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.SAME_STEP,
        **env_kwargs,
    )
    env = SB3VecEnv(vector_env)
    if seed is not None:
        env.seed(seed)
    return env
