"""The generic single environment over an observation source: cyclic factor-shifting actions, uint8 images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from dyndis_envs.factors import ActionEffect, FactorSpace, Subset
from dyndis_envs.noise import add_noise, check_observation_noise
from dyndis_envs.sources import DEFAULT_TABLE_BYTES, FrameLookup, ObservationSource
from dyndis_envs.tasks import PureDynamics, Task
from dyndis_envs.validation import check_choice, is_integer

__all__ = ["FactorEnv", "check_action", "check_render_mode"]


def check_render_mode(render_mode: str | None, metadata: Mapping[str, Any]) -> None:
    """Raise a ValueError unless ``render_mode`` is None or one of ``metadata["render_modes"]``."""
    check_choice("render_mode", render_mode, metadata["render_modes"], optional=True)


def check_action(action: Any, n_actions: int) -> int:
    """Validate one discrete action and return it as a Python int.

    Accepts Python and NumPy integers and 0-d integer arrays; rejects bools, floats and anything else.
    """
    if isinstance(action, np.ndarray) and action.shape == () and np.issubdtype(action.dtype, np.integer):
        action = action.item()
    if not is_integer(action):
        raise TypeError(
            f"`action` must be an integer in [0, {n_actions - 1}], got {action!r} of type {type(action).__name__}."
        )
    if not 0 <= action < n_actions:
        raise ValueError(f"`action` must be in [0, {n_actions - 1}], got {action}.")
    return int(action)


class FactorEnv(gym.Env[npt.NDArray[np.uint8], np.int64]):
    """An environment over the factors of an :class:`ObservationSource`, with a task on top.

    Concrete environments (GridWorld, Shapes3D, Cars3D) subclass it and build their source; this class
    holds the dynamics shared by all of them. See :class:`~dyndis_envs.gridworld.GridWorldEnv` for the full
    description of spaces, rewards and episode ends.

    The chosen values come from exactly one of ``factors`` (the default: all values), ``factor_space`` or
    ``frames``.

    Args:
        source: Renders the image of any factor combination.
        factors: Chosen values per factor name (see :data:`~dyndis_envs.factors.Subset`).
        render_mode: None or ``"rgb_array"``.
        max_table_bytes: Prerender every chosen state into a table when it takes at most this many bytes.
        frames: Reuse the frames (and chosen factor values) of another environment over the same source,
            instead of building them again (a :class:`~dyndis_envs.task_envs.GoalEnv` over a plain env does).
        factor_space: The chosen values, already resolved over ``source.factors`` (when the caller needed
            them before building the source, e.g. to load only the chosen states of a file).
        task: Starts, rewards and terminations (see :mod:`dyndis_envs.tasks`); default
            :class:`~dyndis_envs.tasks.PureDynamics`. Kept, bound to the factor space, as :attr:`task`.
        observation_noise: Amplitude ``k`` of the per-pixel observation noise, in intensity levels of the
            0..255 scale (an int in 0..255; default 0, no noise): every observation is its state's image plus
            integer uniform noise on ``[-k, k]``, independent per pixel and channel, clipped to 0..255, drawn
            from ``np_random`` (see :mod:`dyndis_envs.noise`). :meth:`render` and :meth:`render_states` stay
            clean.

    Attributes:
        factor_space: The chosen values of every factor and the actions on them.
        frames: The images of the chosen states.
        task: The bound task.
        observation_noise: The noise amplitude ``k`` (0: none).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 8}
    #: The keys ``reset(options=...)`` understands.
    reset_options: frozenset[str] = frozenset({"factors"})

    def __init__(
        self,
        source: ObservationSource,
        factors: Mapping[str, Subset] | None = None,
        render_mode: str | None = None,
        max_table_bytes: int = DEFAULT_TABLE_BYTES,
        frames: FrameLookup | None = None,
        *,
        factor_space: FactorSpace | None = None,
        task: Task | None = None,
        observation_noise: int = 0,
    ) -> None:
        check_render_mode(render_mode, self.metadata)
        self.observation_noise = check_observation_noise(observation_noise)
        self.render_mode = render_mode
        self.source = source
        given = [name for name, value in (("factors", factors), ("factor_space", factor_space), ("frames", frames))
                 if value is not None]
        if len(given) > 1:
            raise ValueError(f"Pass at most one of `factors`, `factor_space` and `frames`, got {given}.")
        if frames is not None:
            if frames.source is not source:
                raise ValueError("`frames` must come from an environment over the same `source`.")
            factor_space = frames.factor_space
        elif factor_space is not None:
            if factor_space.factors != tuple(source.factors):
                raise ValueError("`factor_space` must be built over `source.factors` (the same factors and values).")
        else:
            factor_space = FactorSpace(source.factors, factors)
        self.factor_space = factor_space
        if self.factor_space.n_actions == 0:
            raise ValueError(
                "`factors` leaves no active factor: at least one factor needs two or more values, "
                f"got sizes {dict(zip(self.factor_space.names, self.factor_space.sizes))}."
            )
        self.frames = frames or FrameLookup(source, self.factor_space, max_table_bytes)
        self.observation_space = spaces.Box(0, 255, source.image_shape, np.uint8)
        self.action_space = spaces.Discrete(self.factor_space.n_actions)
        if task is None:
            task = PureDynamics()
        elif not isinstance(task, Task):
            raise TypeError(f"`task` must be a dyndis_envs.tasks.Task (e.g. ReachTask()), got {task!r}.")
        self.task: Task = task.bind(self.factor_space)
        self._state: list[int] | None = None

    @property
    def backend(self) -> str:
        """Where the images come from: ``"procedural"`` or ``"file"``."""
        return self.source.backend

    def render_states(self, states: Any) -> npt.NDArray[np.uint8]:
        """The images of any states, without stepping: shape (..., n_factors) -> (..., H, W, C) uint8.

        The states are indices into the chosen values (as in ``info["factors"]``); with
        ``factor_space.all_states()`` and ``factor_space.sample_states(n, rng)`` this is the contract that
        evaluation uses to see every state of an environment.
        """
        checked = self.factor_space.check_states(states, "states")
        flat = checked.reshape(-1, self.factor_space.n_factors)
        return self.frames.batch(flat).reshape(*checked.shape[:-1], *self.source.image_shape)

    @property
    def action_effects(self) -> tuple[ActionEffect, ...]:
        """What each action does, indexed by action (see :class:`~dyndis_envs.factors.ActionEffect`)."""
        return self.factor_space.action_effects

    @property
    def state(self) -> npt.NDArray[np.int64]:
        """The current state: one index into the chosen values per factor."""
        if self._state is None:
            raise gym.error.ResetNeeded("Call `reset()` before reading the state.")
        return np.asarray(self._state, dtype=np.int64)

    # -- what a subclass may extend: the episode's start, the observation and the info of the current state ---

    def _begin_episode(self, options: dict[str, Any]) -> None:
        """Set the start state: ``options["factors"]``, else the task's random start (from ``np_random``)."""
        if "factors" in options:
            state = self.factor_space.check_states(options["factors"], "options['factors']")
            if state.ndim != 1:
                raise ValueError(f"`options['factors']` must be one state of shape ({self.factor_space.n_factors},).")
            self._state = [int(i) for i in state]
        else:
            self._state = self.task.sample_start(self.factor_space, self.np_random)

    def _noisy(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """``image`` with this env's observation noise (``image`` itself when there is none)."""
        if not self.observation_noise:
            return image
        return add_noise(image[None], self.observation_noise, [self.np_random])[0]

    def _observe(self, image: npt.NDArray[np.uint8]) -> Any:
        """The observation of the current state, from its clean image (a fresh array the caller gives up)."""
        return self._noisy(image)

    def _info(self) -> dict[str, Any]:
        return {"factors": np.array(self._state, dtype=np.int64)}

    # -- Gymnasium API ----------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode from a random state drawn by the task, or from ``options["factors"]``."""
        super().reset(seed=seed)
        options = options or {}
        unknown = sorted(set(options) - self.reset_options)
        if unknown:
            raise ValueError(f"Unknown reset option(s) {unknown}; allowed: {sorted(self.reset_options)}.")
        self._begin_episode(options)
        return self._observe(self.frames.one(self._state)), self._info()

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Shift one factor by +1 or -1 (cyclically); returns (obs, reward, terminated, truncated, info).

        The reward and termination are the task's outcome of the new state.
        """
        if self._state is None:
            raise gym.error.ResetNeeded("Call `reset()` before `step()`.")
        action = check_action(action, self.factor_space.n_actions)
        self._state = self.factor_space.step_one(self._state, action)
        reward, terminated = self.task.outcome(np.asarray([self._state], dtype=np.int64))
        return self._observe(self.frames.one(self._state)), float(reward[0]), bool(terminated[0]), False, self._info()

    def render(self) -> npt.NDArray[np.uint8] | None:
        """The clean image of the current state (``render_mode="rgb_array"``), or None without a render mode."""
        if self.render_mode is None:
            gym.logger.warn("`render()` was called without a `render_mode`; pass render_mode='rgb_array'.")
            return None
        if self._state is None:
            raise gym.error.ResetNeeded("Call `reset()` before `render()`.")
        return self.frames.one(self._state)
