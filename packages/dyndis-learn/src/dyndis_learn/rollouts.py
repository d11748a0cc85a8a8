"""Collect episodes through Gymnasium's vector API only: ``gym.make_vec(env_id, num_envs=B, **kwargs)``.

Every episode starts from a fresh random start (the environment's own reset distribution) and lasts
exactly ``T`` steps. Collection is reproducible from integers alone: batch number ``k`` of a collector
seeded with ``seed`` resets the vector env with ``seed=(seed << 32) + k * B`` (sub-env ``i`` gets that
``+ i``, so no two batches share a sub-env seed) and draws its random actions from
``np.random.default_rng([seed, k])``. That is what makes a resumed training run collect the same data.

The learner never reads the environment's internals: ``info["factors"]`` is kept in the batch for
evaluation only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import numpy.typing as npt

import dyndis_envs  # noqa: F401  (registers the DynDis ids)
from dyndis_learn.validation import check_int

__all__ = ["EpisodeBatch", "Policy", "RolloutCollector", "make_vector_env", "with_episode_limit"]

#: A policy maps the current observations (B, H, W, C) uint8 and a generator to actions (B,) int.
Policy = Callable[[npt.NDArray[np.uint8], np.random.Generator], npt.NDArray[np.integer]]


def with_episode_limit(env_kwargs: Mapping[str, Any] | None, steps: int, what: str) -> dict[str, Any]:
    """A copy of ``env_kwargs`` whose ``max_episode_steps`` lets ``steps`` steps run without a truncation.

    Args:
        env_kwargs: The environment's keyword arguments (None: none).
        steps: Steps that must run in one episode.
        what: Those steps in words, for the error (``"the 20 steps per episode"``).

    Raises:
        ValueError: If ``env_kwargs`` sets a shorter ``max_episode_steps`` (naming it and ``what``).
    """
    kwargs = dict(env_kwargs or {})
    limit = kwargs.get("max_episode_steps")
    if limit is not None and limit < steps:
        raise ValueError(f"`env_kwargs['max_episode_steps']`={limit} is shorter than {what}; leave it out or raise it.")
    kwargs.setdefault("max_episode_steps", steps + 1)
    return kwargs


class EpisodeBatch(NamedTuple):
    """A batch of ``B`` episodes of ``T`` steps.

    Attributes:
        observations: uint8 images, shape (B, T + 1, H, W, C); ``observations[:, 0]`` is the start.
        actions: int64, shape (B, T); ``actions[:, t]`` leads from frame ``t`` to frame ``t + 1``.
        factors: int64 ground-truth factor indices, shape (B, T + 1, F), or None when the env gives none.
            For evaluation only: training never reads them.
    """

    observations: npt.NDArray[np.uint8]
    actions: npt.NDArray[np.int64]
    factors: npt.NDArray[np.int64] | None


def make_vector_env(env_id: str, num_envs: int, episode_steps: int, env_kwargs: Mapping[str, Any] | None = None):
    """``gym.make_vec`` with a time limit that never cuts an episode of ``episode_steps`` steps short.

    Args:
        env_id: A registered Gymnasium id with a discrete action space and image observations.
        num_envs: Number of sub-environments ``B``.
        episode_steps: Steps per collected episode ``T``.
        env_kwargs: Further keyword arguments of the environment.
    """
    kwargs = with_episode_limit(env_kwargs, episode_steps, f"the {episode_steps} steps per episode")
    try:
        env = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    except gym.error.Error as exc:
        raise ValueError(f"Cannot make a vector env for `env_id`={env_id!r}: {exc}") from exc
    if not isinstance(env.single_action_space, gym.spaces.Discrete):
        raise ValueError(f"`env_id`={env_id!r} must have a Discrete action space, got {env.single_action_space}.")
    shape = env.single_observation_space.shape
    if shape is None or len(shape) != 3 or shape[-1] not in (1, 3):
        raise ValueError(f"`env_id`={env_id!r} must give (H, W, C) images with C in (1, 3), got shape {shape}.")
    return env


class RolloutCollector:
    """Collects batches of fresh episodes from one vector environment.

    Args:
        env_id: Registered Gymnasium id, e.g. ``"DynDis/GridWorld-v0"``.
        num_episodes: Episodes per batch ``B`` (= sub-environments).
        episode_steps: Steps per episode ``T``.
        seed: Base seed of the reset and action streams (see the module docstring).
        env_kwargs: Keyword arguments of the environment.
        policy: Optional policy; uniformly random actions by default.
    """

    def __init__(
        self,
        env_id: str,
        num_episodes: int,
        episode_steps: int,
        seed: int = 0,
        env_kwargs: Mapping[str, Any] | None = None,
        policy: Policy | None = None,
    ) -> None:
        check_int("num_episodes", num_episodes, minimum=1)
        check_int("episode_steps", episode_steps, minimum=1)
        check_int("seed", seed, minimum=0)
        self.env = make_vector_env(env_id, num_episodes, episode_steps, env_kwargs)
        self.env_id = env_id
        self.num_episodes = int(num_episodes)
        self.episode_steps = int(episode_steps)
        self.seed = int(seed)
        self.policy = policy
        self.n_actions = int(self.env.single_action_space.n)
        self.image_shape: tuple[int, int, int] = tuple(self.env.single_observation_space.shape)

    def collect(self, index: int) -> EpisodeBatch:
        """Batch number ``index`` of this collector's stream: the same batch every time it is asked for."""
        b, steps = self.num_episodes, self.episode_steps
        rng = np.random.default_rng([self.seed, index])
        obs, info = self.env.reset(seed=(self.seed << 32) + index * b)
        observations = np.empty((b, steps + 1, *self.image_shape), dtype=np.uint8)
        actions = np.empty((b, steps), dtype=np.int64)
        factors = _factors(info, b, steps)
        observations[:, 0] = obs
        if factors is not None:
            factors[:, 0] = info["factors"]
        random_actions = rng.integers(0, self.n_actions, size=(b, steps)) if self.policy is None else None
        for t in range(steps):
            actions[:, t] = random_actions[:, t] if random_actions is not None else self.policy(obs, rng)
            obs, _, terminated, truncated, info = self.env.step(actions[:, t])
            if np.any(terminated) or (t < steps - 1 and np.any(truncated)):
                raise RuntimeError(
                    f"An episode of {self.env_id!r} ended after {t + 1} of {self.episode_steps} steps; "
                    "the learner needs environments that run for the whole episode (pure-dynamics ids)."
                )
            observations[:, t + 1] = obs
            if factors is not None:
                factors[:, t + 1] = info["factors"]
        return EpisodeBatch(observations, actions, factors)

    def close(self) -> None:
        """Close the vector environment."""
        self.env.close()


def _factors(info: Mapping[str, Any], num_episodes: int, steps: int) -> npt.NDArray[np.int64] | None:
    if "factors" not in info:
        return None
    n_factors = np.asarray(info["factors"]).shape[-1]
    return np.empty((num_episodes, steps + 1, n_factors), dtype=np.int64)
