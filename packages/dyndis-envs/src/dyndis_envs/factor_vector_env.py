"""A natively batched Gymnasium VectorEnv over a :class:`~dyndis_envs.factor_env.FactorEnv`.

All sub-environments share one source and frame table: a step is one vectorised state update and one
NumPy gather of all frames. Sub-environment ``i`` draws its random starts (and its observation noise, see
:mod:`dyndis_envs.noise`) from its own generator, seeded with ``seed + i``, in the order a single
environment draws them, so it reproduces exactly the trajectory of a single environment reset with that
seed. Starts, rewards and terminations come from the single environment's task
(:class:`~dyndis_envs.tasks.Task`), asked for a whole batch at once.

Observations may be arrays or dicts of arrays (a goal task's); the batch helpers below index both.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dyndis_envs.factor_env import FactorEnv, check_render_mode
from dyndis_envs.factors import ActionEffect
from dyndis_envs.noise import add_noise
from dyndis_envs.tasks import Task
from dyndis_envs.validation import check_choice, check_int, is_integer

__all__ = ["FactorVectorEnv"]


def _rows(batch: Any, index: Any) -> Any:
    """Rows ``index`` of a batched observation: an array, or a dict of arrays (each indexed)."""
    if isinstance(batch, dict):
        return {key: value[index] for key, value in batch.items()}
    return batch[index]


def _copy(batch: Any) -> Any:
    """A copy of a batched observation (an array or a dict of arrays)."""
    if isinstance(batch, dict):
        return {key: value.copy() for key, value in batch.items()}
    return batch.copy()


def _set_rows(batch: Any, index: Any, values: Any) -> None:
    """Write ``values`` (shaped like ``_rows(batch, index)``) into rows ``index`` of ``batch``, in place."""
    if isinstance(batch, dict):
        for key, value in batch.items():
            value[index] = values[key]
    else:
        batch[index] = values


def _check_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    return AutoresetMode(check_choice("autoreset_mode", mode, [m.value for m in AutoresetMode]))


class FactorVectorEnv(VectorEnv):
    """``num_envs`` copies of a factor environment, stepped together in NumPy.

    Subclasses set :attr:`single_env_class`; the keyword arguments beyond the vector ones are that class's.

    Args:
        num_envs: Number of sub-environments.
        max_episode_steps: Truncate each episode after this many steps (None: never).
        autoreset_mode: ``NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``, as in Gymnasium 1.x.
        render_mode: None or ``"rgb_array"``.
        task: The task of every sub-environment (default: the single environment's,
            :class:`~dyndis_envs.tasks.PureDynamics` for the DynDis envs); given to ``single_env_class``.
        single_env: An already built single environment to batch (instead of building ``single_env_class``);
            its task and observation noise are used. It must observe images (a Box space): a
            :class:`~dyndis_envs.task_envs.GoalEnv` has its own vector env,
            :class:`~dyndis_envs.task_envs.GoalVectorEnv`.
        **env_kwargs: Keyword arguments of ``single_env_class`` (``observation_noise`` among them).

    Attributes:
        env: The single environment whose factor space, frames, task and observation noise the sub-environments
            share.
        task: Its task.
        factor_space: Its factor space.
        observation_noise: Its noise amplitude (0: none); sub-env ``i`` draws the noise from its own generator.
    """

    single_env_class: ClassVar[type[FactorEnv]] = FactorEnv
    #: The keys ``reset(options=...)`` understands.
    reset_options: frozenset[str] = frozenset({"factors", "reset_mask"})

    def __init__(
        self,
        num_envs: int = 1,
        *,
        max_episode_steps: int | None = 200,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        task: Task | None = None,
        single_env: FactorEnv | None = None,
        **env_kwargs: Any,
    ) -> None:
        num_envs = check_int("num_envs", num_envs, minimum=1)
        max_episode_steps = check_int("max_episode_steps", max_episode_steps, minimum=1, optional=True)
        self.autoreset_mode = _check_autoreset_mode(autoreset_mode)
        if single_env is None:
            task_kwargs = {} if task is None else {"task": task}  # a subclass's env class may predate tasks
            env = self.single_env_class(render_mode=render_mode, **task_kwargs, **env_kwargs)
        elif env_kwargs or task is not None:
            given = sorted(env_kwargs) + (["task"] if task is not None else [])
            raise TypeError(f"Pass either `single_env` or environment keyword arguments, not both (got {given}).")
        else:
            self._check_single_env(single_env)
            env = single_env
        check_render_mode(render_mode, env.metadata)
        self.env = env
        self.task = env.task
        self.observation_noise = env.observation_noise
        self.metadata = {**env.metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs = int(num_envs)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.render_mode = render_mode
        self.factor_space = env.factor_space
        self.frames = env.frames
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        n, f = self.num_envs, self.factor_space.n_factors
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._states = np.zeros((n, f), dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._needs_reset = np.zeros(n, dtype=bool)  # NEXT_STEP: reset these on the next step
        self._was_reset = False
        self._last_obs: Any = None  # what a reset with a mask returns for the sub-envs it leaves alone

    def _check_single_env(self, env: Any) -> None:
        """Raise unless ``env`` is a single environment this class can batch: a FactorEnv observing images."""
        if not isinstance(env, FactorEnv) or not isinstance(env.observation_space, spaces.Box):
            raise ValueError(
                f"`single_env` must be a FactorEnv observing images (a Box space), got {type(env).__name__}; "
                "a GoalEnv has its own vector env, dyndis_envs.task_envs.GoalVectorEnv."
            )

    def render_states(self, states: Any) -> npt.NDArray[np.uint8]:
        """The images of any states, without stepping (see :meth:`FactorEnv.render_states`)."""
        return self.env.render_states(states)

    @property
    def action_effects(self) -> tuple[ActionEffect, ...]:
        """What each action does, indexed by action (see :class:`~dyndis_envs.factors.ActionEffect`)."""
        return self.factor_space.action_effects

    @property
    def backend(self) -> str:
        """Where the images come from: ``"procedural"`` or ``"file"``."""
        return self.env.backend

    @property
    def states(self) -> npt.NDArray[np.int64]:
        """Current states, shape (num_envs, n_factors)."""
        return self._states.copy()

    # -- what a subclass may extend: episode starts, observations, outcomes and infos, for a batch ------------

    def _rng(self, i: int) -> np.random.Generator:
        """Sub-env ``i``'s generator (an unseeded one if it has none yet, as a single env would make)."""
        rng = self._rngs[i]
        if rng is None:
            rng = self._rngs[i] = seeding.np_random(None)[0]
        return rng

    def _begin_episodes(self, envs: npt.NDArray[np.intp], options: dict[str, Any]) -> None:
        """Set the start states of ``envs``: ``options["factors"]``, else the task's random starts."""
        if "factors" in options:
            given = self.factor_space.check_states(options["factors"], "options['factors']")
            self._states[envs] = np.broadcast_to(given, (self.num_envs, self.factor_space.n_factors))[envs]
            for i in envs:  # keep every sub-env's generator in the state a single env's would have
                self._rng(i)
        else:
            for i in envs:
                self._states[i] = self.task.sample_start(self.factor_space, self._rng(i))

    def _noisy(self, images: npt.NDArray[np.uint8], envs: npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
        """``images`` of the sub-envs ``envs`` with their observation noise (``images`` itself without noise)."""
        if not self.observation_noise:
            return images
        return add_noise(images, self.observation_noise, [self._rng(i) for i in envs])

    def _observe(self, envs: npt.NDArray[np.intp]) -> Any:
        """The batched observation of the sub-envs ``envs`` in their current states (fresh arrays)."""
        return self._noisy(self.frames.batch(self._states[envs]), envs)

    def _outcome(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Rewards and terminations of every sub-env's current state."""
        return self.task.outcome(self._states)

    def _info(self, mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
        """The infos of the sub-envs in ``mask`` (zeros elsewhere), with Gymnasium's ``_key`` masks."""
        factors = np.where(mask[:, None], self._states, 0)
        return {"factors": factors, "_factors": mask.copy()}

    def _check_actions(self, actions: Any) -> npt.NDArray[np.int64]:
        array = np.asarray(actions)
        n_actions = self.factor_space.n_actions
        if array.shape != (self.num_envs,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"`actions` must be an integer array of shape ({self.num_envs},), got {actions!r}."
            )
        if np.any(array < 0) or np.any(array >= n_actions):
            raise ValueError(f"`actions` must be in [0, {n_actions - 1}], got {actions!r}.")
        return array.astype(np.int64, copy=False)

    # -- Gymnasium VectorEnv API ------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset all sub-environments, or those in ``options["reset_mask"]``.

        Args:
            seed: None, an int (sub-env ``i`` gets ``seed + i``) or a list of one seed (or None) per sub-env.
            options: ``"reset_mask"``: bool array (num_envs,) of sub-envs to reset (the others' observations
                are their last ones, as in Gymnasium's SyncVectorEnv); ``"factors"``: start state(s), shape
                (n_factors,) for all or (num_envs, n_factors) per sub-env.
        """
        options = options or {}
        unknown = sorted(set(options) - self.reset_options)
        if unknown:
            raise ValueError(f"Unknown reset option(s) {unknown}; allowed: {sorted(self.reset_options)}.")
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif is_integer(seed):
            super().reset(seed=int(seed))
            seeds = [int(seed) + i for i in range(n)]
        elif isinstance(seed, (list, tuple)) and len(seed) == n:
            seeds = list(seed)
        else:
            raise ValueError(f"`seed` must be None, an int, or a list of {n} ints or Nones, got {seed!r}.")

        mask = options.get("reset_mask", np.ones(n, dtype=bool))
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
            raise ValueError(f"`options['reset_mask']` must be a bool numpy array of shape ({n},), got {mask!r}.")
        if not mask.any():
            raise ValueError("`options['reset_mask']` must select at least one sub-environment.")
        envs = np.flatnonzero(mask)
        for i in envs:
            if seeds[i] is not None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
        self._begin_episodes(envs, options)
        self._steps[envs] = 0
        self._needs_reset[envs] = False
        if mask.all() or self._last_obs is None:
            obs = self._observe(np.arange(n))
        else:
            obs = _copy(self._last_obs)
            _set_rows(obs, envs, self._observe(envs))
        self._was_reset = True
        self._last_obs = obs
        return obs, self._info(mask.copy())

    def step(
        self, actions: Any
    ) -> tuple[Any, npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]]:
        """Step every sub-environment; finished ones reset as ``autoreset_mode`` says."""
        if not self._was_reset:
            raise gym.error.ResetNeeded("Call `reset()` before `step()`.")
        actions = self._check_actions(actions)
        n = self.num_envs
        if self.autoreset_mode is AutoresetMode.DISABLED and self._needs_reset.any():
            raise gym.error.ResetNeeded(
                f"Sub-environments {np.flatnonzero(self._needs_reset).tolist()} finished; with autoreset_mode "
                "DISABLED, reset them with options={'reset_mask': ...} before stepping."
            )
        resetting = self._needs_reset if self.autoreset_mode is AutoresetMode.NEXT_STEP else np.zeros(n, bool)
        self._states = self.factor_space.step(self._states, actions)
        self._steps += 1
        rewards, terminated = self._outcome()
        truncated = (
            self._steps >= self.max_episode_steps if self.max_episode_steps is not None else np.zeros(n, bool)
        )
        # like Gymnasium's TimeLimit, an episode can be both terminated and truncated on its last step
        infos: dict[str, Any] = {}
        if resetting.any():
            envs = np.flatnonzero(resetting)
            self._begin_episodes(envs, {})
            self._steps[envs] = 0
            rewards[envs] = 0.0
            terminated[envs] = False
            truncated[envs] = False
        done = terminated | truncated
        obs = self._observe(np.arange(n))
        if self.autoreset_mode is AutoresetMode.SAME_STEP and done.any():
            envs = np.flatnonzero(done)
            # an object array with one observation per finished sub-env, None elsewhere, as SyncVectorEnv gives
            final_obs = np.full(n, None, dtype=object)
            for i in envs:
                final_obs[i] = _copy(_rows(obs, i))
            infos = {
                "final_obs": final_obs,
                "_final_obs": done.copy(),
                "final_info": self._info(done),
                "_final_info": done.copy(),
            }
            self._begin_episodes(envs, {})
            self._steps[envs] = 0
            _set_rows(obs, envs, self._observe(envs))
        else:
            self._needs_reset = done
        infos.update(self._info(np.ones(n, dtype=bool)))
        self._last_obs = obs
        return obs, rewards, terminated, truncated, infos

    def render(self) -> tuple[npt.NDArray[np.uint8], ...] | None:
        """The current image of every sub-environment (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn("`render()` was called without a `render_mode`; pass render_mode='rgb_array'.")
            return None
        return tuple(self.frames.batch(self._states))
