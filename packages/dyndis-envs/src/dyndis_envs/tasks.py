"""Tasks: where an episode of a factor environment starts, and what reaching a state earns.

The dynamics (factors, actions, images) belong to the environment; a :class:`Task` adds the RL problem on
top. :class:`~dyndis_envs.factor_env.FactorEnv` and :class:`~dyndis_envs.factor_vector_env.FactorVectorEnv`
take one as ``task=`` and use only its public methods: :meth:`Task.bind` once when built, then
:meth:`Task.sample_start` for every random start and :meth:`Task.outcome` after every step, in batches, so
a single env and a native vector env get the same rewards and terminations.

* :class:`PureDynamics` (the default; the plain ``DynDis/<Name>-v0`` ids): reward 0.0, never terminates.
* :class:`ReachTask` (``DynDis/<Name>Reach-v0``): random start, fixed target; 1.0 and terminated on reaching it.
* :class:`GoalTask` (``DynDis/<Name>Goal-v0``, through :class:`~dyndis_envs.task_envs.GoalEnv` and
  :class:`~dyndis_envs.task_envs.GoalVectorEnv`): like Reach, with a new goal every episode.

Example:
    >>> import dyndis_envs
    >>> from dyndis_envs.gridworld import GridWorldEnv
    >>> env = GridWorldEnv(task=ReachTask(target=[0, 0, 0, 0, 0]))
    >>> _ = env.reset(seed=0, options={"factors": [1, 0, 0, 0, 0]})
    >>> env.step(1)[1:3]  # north_south - 1 reaches the target
    (1.0, True)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from dyndis_envs.factors import FactorSpace

__all__ = ["GoalTask", "Outcome", "PureDynamics", "ReachTask", "Task"]

#: A batch of rewards (float64) and terminations (bool), each of shape (B,).
Outcome = tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]


class Task(ABC):
    """The RL problem posed on a factor environment: random starts, rewards and terminations.

    Subclasses implement :meth:`outcome` and may override :meth:`bind` (to check or complete themselves
    against the environment's factor space) and :meth:`sample_start` (to avoid some starts). A task must
    draw all its randomness from the generator it is given, so that seeding the environment seeds it.
    """

    def bind(self, space: FactorSpace) -> Task:
        """This task, ready for an environment over ``space``: checked against it, defaults filled in.

        The environment calls it once, in its constructor, and keeps the result as ``env.task``. The
        default returns ``self``.

        Raises:
            ValueError: If the task does not fit ``space`` (e.g. a target state out of range).
        """
        return self

    def sample_start(self, space: FactorSpace, rng: np.random.Generator) -> list[int]:
        """A random start state (one index into the chosen values per factor), drawn from ``rng``.

        The default is uniform over all states. A vector env calls it with each sub-env's own generator.
        """
        return space.sample(rng)

    @abstractmethod
    def outcome(self, states: npt.NDArray[np.int64]) -> Outcome:
        """Reward and termination of the states a step reached.

        Args:
            states: int64 of shape (B, n_factors), one state per (sub-)environment.

        Returns:
            ``(reward, terminated)``: new float64 and bool arrays of shape (B,), which the caller may modify.
        """


class PureDynamics(Task):
    """No task: reward 0.0 on every step, never terminated; starts uniformly random (the plain ids)."""

    def outcome(self, states: npt.NDArray[np.int64]) -> Outcome:
        """Zero rewards, no terminations."""
        return np.zeros(len(states)), np.zeros(len(states), dtype=bool)

    def __repr__(self) -> str:
        return "PureDynamics()"


def _draw_other(space: FactorSpace, rng: np.random.Generator, avoid: list[int]) -> list[int]:
    """A state drawn uniformly from all states except ``avoid`` (rejection sampling)."""
    while True:
        state = space.sample(rng)
        if state != avoid:
            return state


def _one_state(space: FactorSpace, state: object, name: str) -> npt.NDArray[np.int64]:
    """``state`` checked as one state of ``space``, shape (n_factors,)."""
    checked = space.check_states(state, name)
    if checked.ndim != 1:
        raise ValueError(f"`{name}` must be one state of shape ({space.n_factors},), got {state!r}.")
    return checked


class ReachTask(Task):
    """Reach a fixed target state from a uniformly random start other than the target.

    Reward 1.0 on the step that reaches the target, else 0.0; the episode terminates there.

    Args:
        target: The target state, one index into the chosen values per factor; None (default) for the
            middle value ``size // 2`` of every factor, filled in by :meth:`bind`.

    Attributes:
        target: The target as given (None for the default); on a bound task (``env.task``), the int64
            state of shape (n_factors,).
    """

    def __init__(self, target: Sequence[int] | npt.NDArray[np.integer] | None = None) -> None:
        self.target: npt.NDArray[np.int64] | Sequence[int] | None = target
        self._target_list: list[int] | None = None

    def bind(self, space: FactorSpace) -> ReachTask:
        """A task with the target checked against ``space`` (and the default target filled in).

        Raises:
            ValueError: If ``target`` is not one state of ``space`` (wrong length, out of range).
        """
        target = self.target if self.target is not None else [size // 2 for size in space.sizes]
        bound = ReachTask(_one_state(space, target, "target"))
        bound._target_list = bound.target.tolist()  # type: ignore[union-attr]
        return bound

    def _target(self) -> list[int]:
        if self._target_list is None:
            raise RuntimeError("This ReachTask is not bound to an environment: call `bind(space)` first.")
        return self._target_list

    def sample_start(self, space: FactorSpace, rng: np.random.Generator) -> list[int]:
        """A uniformly random state other than the target."""
        return _draw_other(space, rng, self._target())

    def outcome(self, states: npt.NDArray[np.int64]) -> Outcome:
        """1.0 and terminated where a state is the target."""
        reached = (states == np.asarray(self._target())).all(axis=1)
        return reached.astype(np.float64), reached

    def __repr__(self) -> str:
        target = self.target.tolist() if isinstance(self.target, np.ndarray) else self.target
        return f"ReachTask(target={target!r})"


class GoalTask(Task):
    """Reach a goal state that changes every episode: :class:`ReachTask` with a moving target.

    :class:`~dyndis_envs.task_envs.GoalEnv` holds one and sets its goal on every reset (with
    :meth:`draw_goal` or :meth:`set_goal`); :meth:`outcome` judges against that goal.
    :class:`~dyndis_envs.task_envs.GoalVectorEnv` keeps one goal per sub-env instead: it draws them with
    :meth:`sample_goal` and judges a batch with :meth:`goal_outcome`.

    Attributes:
        goal: The current goal state (one index into the chosen values per factor), None before the first reset.
    """

    def __init__(self) -> None:
        self.goal: list[int] | None = None

    def sample_goal(self, space: FactorSpace, rng: np.random.Generator, start: list[int]) -> list[int]:
        """A uniformly random goal other than ``start``, drawn from ``rng`` (the task's goal is not changed)."""
        return _draw_other(space, rng, start)

    def draw_goal(self, space: FactorSpace, rng: np.random.Generator, start: list[int]) -> list[int]:
        """Draw a goal with :meth:`sample_goal`, make it the goal, and return it."""
        self.goal = self.sample_goal(space, rng, start)
        return self.goal

    def set_goal(self, space: FactorSpace, goal: object) -> list[int]:
        """Make ``goal`` (checked against ``space``) the goal, and return it as a list of ints.

        Raises:
            ValueError: If ``goal`` is not one state of ``space``.
        """
        self.goal = _one_state(space, goal, "options['goal']").tolist()
        return self.goal

    @staticmethod
    def goal_outcome(states: npt.NDArray[np.int64], goals: npt.NDArray[np.int64]) -> Outcome:
        """1.0 and terminated where a state is its goal; ``states`` and ``goals`` of shape (B, n_factors)."""
        reached = (states == goals).all(axis=1)
        return reached.astype(np.float64), reached

    def outcome(self, states: npt.NDArray[np.int64]) -> Outcome:
        """1.0 and terminated where a state is the goal."""
        if self.goal is None:
            raise gym.error.ResetNeeded("The goal is drawn on `reset()`; call it before `step()`.")
        return self.goal_outcome(states, np.asarray([self.goal]))

    def __repr__(self) -> str:
        return f"GoalTask(goal={self.goal!r})"
