"""RL tasks on top of the plain (pure-dynamics) environments: reach a fixed target, or a random goal image.

``DynDis/<Name>Reach-v0``: random start, fixed target state; reward 1.0 and terminated on reaching it.
``DynDis/<Name>Goal-v0``: Dict observation with the current, achieved and desired images, a random goal
each episode and a vectorised :meth:`GoalEnv.compute_reward`, as Stable-Baselines3's HER needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from dyndis_envs.factor_env import FactorEnv
from dyndis_envs.factor_vector_env import FactorVectorEnv

__all__ = ["GoalEnv", "ReachEnv", "ReachVectorEnv"]


def _plain_env(env: str | FactorEnv, render_mode: str | None, env_kwargs: dict[str, Any]) -> FactorEnv:
    """The plain environment a task is built on: an instance, or made from its id."""
    if isinstance(env, FactorEnv):
        if env_kwargs:
            raise TypeError(f"Pass either a built `env` or its keyword arguments, not both (got {sorted(env_kwargs)}).")
        return env
    if not isinstance(env, str):
        raise TypeError(f"`env` must be an environment id such as 'DynDis/GridWorld-v0' or a FactorEnv, got {env!r}.")
    plain = gym.make(env, render_mode=render_mode, **env_kwargs).unwrapped
    if not isinstance(plain, FactorEnv):
        raise TypeError(f"`env`={env!r} is not a DynDis factor environment.")
    return plain


def _draw_other(space_sample, rng: np.random.Generator, avoid: list[int]) -> list[int]:
    """A state drawn uniformly from all states except ``avoid`` (rejection sampling)."""
    while True:
        state = space_sample(rng)
        if state != avoid:
            return state


class ReachEnv(FactorEnv):
    """Reach a fixed target state from a random start.

    ## Description
    The dynamics, factors and observations of the plain environment ``env``. The episode starts in a
    uniformly random state other than the target.

    ## Rewards
    1.0 on the step that reaches ``target``, else 0.0.

    ## Episode End
    Terminates on reaching the target; ``gym.make`` truncates after ``max_episode_steps`` (100).

    ## Arguments
    ``env``: the plain environment id (``"DynDis/GridWorld-v0"``) or a built
    :class:`~dyndis_envs.factor_env.FactorEnv`; ``target``: the target state (an index within the chosen
    values per factor; default: the middle value ``size // 2`` of every factor); ``render_mode``; further
    keyword arguments go to the plain environment.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/GridWorldReach-v0", target=[0, 0, 0, 0, 0])
        >>> obs, info = env.reset(seed=0)
        >>> env.unwrapped.target.tolist()
        [0, 0, 0, 0, 0]
    """

    def __init__(
        self,
        env: str | FactorEnv = "DynDis/GridWorld-v0",
        target: Sequence[int] | npt.NDArray[np.integer] | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        plain = _plain_env(env, render_mode, env_kwargs)
        super().__init__(plain.source, render_mode=render_mode, frames=plain.frames)
        space = self.factor_space
        if target is None:
            target = [size // 2 for size in space.sizes]
        checked = space.check_states(target, "target")
        if checked.ndim != 1:
            raise ValueError(f"`target` must be one state of shape ({space.n_factors},), got {target!r}.")
        self.target = checked
        self._target_list = checked.tolist()

    @property
    def target_image(self) -> npt.NDArray[np.uint8]:
        """The image of the target state."""
        return self.frames.one(self._target_list)

    def _sample_start(self, rng: np.random.Generator) -> list[int]:
        return _draw_other(self.factor_space.sample, rng, self._target_list)

    def _task_outcome(self, states: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        reached = (states == self.target).all(axis=1)
        return reached.astype(np.float64), reached


class ReachVectorEnv(FactorVectorEnv):
    """Natively batched :class:`ReachEnv` (same keyword arguments, plus the vector ones)."""

    single_env_class = ReachEnv


class GoalEnv(FactorEnv):
    """Reach a random goal image: a goal-conditioned task for HER.

    ## Observation Space
    ``Dict(observation, achieved_goal, desired_goal)``, each the plain environment's image space;
    ``achieved_goal`` is the current image.

    ## Rewards
    1.0 when the current state is the goal state, else 0.0; :meth:`compute_reward` gives the same from
    images, vectorised over any leading batch dimensions (different states render different images).

    ## Starting State
    A uniformly random start, then a uniformly random goal other than the start;
    ``reset(options={"factors": start, "goal": goal})`` sets either.

    ## Episode End
    Terminates on reaching the goal; ``gym.make`` truncates after ``max_episode_steps`` (100).

    ## Info
    ``factors`` and ``goal_factors`` (int64 states), ``is_success`` (bool).

    ## Arguments
    ``env`` (plain environment id or instance), ``render_mode``, and the plain environment's keyword
    arguments.
    """

    reset_options = frozenset({"factors", "goal"})

    def __init__(self, env: str | FactorEnv = "DynDis/GridWorld-v0", render_mode: str | None = None, **env_kwargs: Any):
        plain = _plain_env(env, render_mode, env_kwargs)
        super().__init__(plain.source, render_mode=render_mode, frames=plain.frames)
        image = self.observation_space
        self.observation_space = spaces.Dict({"observation": image, "achieved_goal": image, "desired_goal": image})
        self._goal: list[int] | None = None
        self._goal_image: npt.NDArray[np.uint8] | None = None

    @property
    def goal(self) -> npt.NDArray[np.int64]:
        """The current episode's goal state."""
        if self._goal is None:
            raise gym.error.ResetNeeded("Call `reset()` before reading the goal.")
        return np.asarray(self._goal, dtype=np.int64)

    def _observe(self, image: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.uint8]]:
        return {"observation": image, "achieved_goal": image.copy(), "desired_goal": self._goal_image.copy()}

    def _info(self) -> dict[str, Any]:
        if self._goal is None:  # inside reset, before the goal is drawn
            return super()._info()
        return {
            "factors": np.array(self._state, dtype=np.int64),
            "goal_factors": np.array(self._goal, dtype=np.int64),
            "is_success": self._state == self._goal,
        }

    def _task_outcome(self, states: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        reached = (states == np.asarray(self._goal)).all(axis=1)
        return reached.astype(np.float64), reached

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, npt.NDArray[np.uint8]], dict[str, Any]]:
        """Draw a start and a different goal (or take them from ``options``)."""
        goal = (options or {}).get("goal")
        self._goal = None
        image, _ = super().reset(seed=seed, options={k: v for k, v in (options or {}).items() if k != "goal"})
        if goal is None:
            self._goal = _draw_other(self.factor_space.sample, self.np_random, self._state)
        else:
            checked = self.factor_space.check_states(goal, "options['goal']")
            if checked.ndim != 1:
                raise ValueError(f"`options['goal']` must be one state of shape ({self.factor_space.n_factors},).")
            self._goal = checked.tolist()
        self._goal_image = self.frames.one(self._goal)
        return self._observe(image), self._info()

    def step(self, action: Any) -> tuple[dict[str, npt.NDArray[np.uint8]], SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the plain dynamics; reward 1.0 and terminated on reaching the goal."""
        image, reward, terminated, truncated, info = super().step(action)
        return self._observe(image), reward, terminated, truncated, info

    def compute_reward(
        self, achieved_goal: npt.NDArray[np.uint8], desired_goal: npt.NDArray[np.uint8], info: Any
    ) -> npt.NDArray[np.float64] | float:
        """1.0 where the achieved image equals the desired one, over leading batch dimensions (B, H, W, C)."""
        reached = np.all(np.asarray(achieved_goal) == np.asarray(desired_goal), axis=(-3, -2, -1))
        return reached.astype(np.float64) if reached.ndim else float(reached)

    def compute_terminated(
        self, achieved_goal: npt.NDArray[np.uint8], desired_goal: npt.NDArray[np.uint8], info: Any
    ) -> npt.NDArray[np.bool_] | bool:
        """Whether the goal is reached, vectorised like :meth:`compute_reward`."""
        return np.asarray(self.compute_reward(achieved_goal, desired_goal, info)) > 0
