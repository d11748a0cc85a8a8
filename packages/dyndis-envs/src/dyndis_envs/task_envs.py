"""The RL task ids: ``DynDis/<Name>Reach-v0`` (fixed target) and ``DynDis/<Name>Goal-v0`` (a goal image per episode).

Both are built on the plain environment named by ``env``, a registered id such as ``"DynDis/GridWorld-v0"``:
the class registered for that id is built directly, never through ``gym.make``. A Reach env *is* that
class with a :class:`~dyndis_envs.tasks.ReachTask` (and its vector env, the id's vector class with the
same task); a Goal env is a :class:`GoalEnv` over it.

``gym.make`` wraps every env in ``PassiveEnvChecker``, ``OrderEnforcing`` and ``TimeLimit``, and Gymnasium 1.x
wrappers do not forward unknown attributes, so ``gym.make("DynDis/<Name>Goal-v0").compute_reward`` would not
exist. The Goal ids therefore list :data:`GOAL_WRAPPERS` (one :class:`GoalMethods`) as their
``additional_wrappers``, which ``gym.make`` applies outside ``TimeLimit``: the env it returns has
``compute_reward`` and ``compute_terminated``, as SB3's ``check_env`` calls them. (SB3's HER reaches them
through ``VecEnv.env_method``, i.e. ``get_wrapper_attr``, which works with or without it.)

To pose a task on an environment built by hand, pass it directly: ``GridWorldEnv(task=ReachTask(...))``,
``GridWorldVectorEnv(8, task=ReachTask(...))``, ``GoalEnv(GridWorldEnv(...))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.envs.registration import WrapperSpec, load_env_creator
from gymnasium.utils import RecordConstructorArgs

from dyndis_envs.factor_env import FactorEnv
from dyndis_envs.factor_vector_env import FactorVectorEnv
from dyndis_envs.tasks import GoalTask, ReachTask

__all__ = ["GOAL_WRAPPERS", "GoalEnv", "GoalMethods", "make_goal_env", "make_reach_env", "make_reach_vector_env"]


def _registered(env: str, entry: str, base: type) -> Any:
    """The class registered as ``entry`` ("entry_point" or "vector_entry_point") of the id ``env``."""
    if not isinstance(env, str):
        raise TypeError(f"`env` must be an environment id such as 'DynDis/GridWorld-v0', got {env!r}.")
    point = getattr(gym.spec(env), entry)
    creator = load_env_creator(point) if isinstance(point, str) else point
    if not (isinstance(creator, type) and issubclass(creator, base)):
        raise TypeError(f"`env`={env!r} is not a DynDis factor environment: its {entry} is {point!r}.")
    return creator


def make_reach_env(
    env: str = "DynDis/GridWorld-v0",
    target: Sequence[int] | npt.NDArray[np.integer] | None = None,
    **env_kwargs: Any,
) -> FactorEnv:
    """Reach a fixed target state from a random start (the entry point of ``DynDis/<Name>Reach-v0``).

    ## Description
    The plain environment ``env`` (its dynamics, factors, images and ``action_effects``), built with
    ``task=ReachTask(target)``. The episode starts in a uniformly random state other than the target.

    ## Action Space
    The plain environment's: ``Discrete(2 * n_active)``; ``env.unwrapped.action_effects[a]`` says which
    factor action ``a`` moves and in which direction.

    ## Observation Space
    The plain environment's image.

    ## Rewards
    1.0 on the step that reaches ``target``, else 0.0.

    ## Starting State
    Uniformly random over the chosen values, never the target; ``reset(options={"factors": [...]})`` sets it.

    ## Episode End
    Terminates on reaching the target; ``gym.make`` truncates after ``max_episode_steps`` (100).

    ## Arguments
    ``env``: the plain environment id (``"DynDis/GridWorld-v0"``); ``target``: the target state
    (an index within the chosen values per factor; default: the middle value ``size // 2`` of every
    factor); ``render_mode`` and every other keyword argument go to the plain environment.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/GridWorldReach-v0", target=[0, 0, 0, 0, 0])
        >>> obs, info = env.reset(seed=0)
        >>> env.unwrapped.task.target.tolist()
        [0, 0, 0, 0, 0]
    """
    return _registered(env, "entry_point", FactorEnv)(task=ReachTask(target), **env_kwargs)


def make_reach_vector_env(
    num_envs: int = 1,
    *,
    env: str = "DynDis/GridWorld-v0",
    target: Sequence[int] | npt.NDArray[np.integer] | None = None,
    **kwargs: Any,
) -> FactorVectorEnv:
    """Natively batched :func:`make_reach_env` (the vector entry point of ``DynDis/<Name>Reach-v0``).

    Takes ``num_envs``, ``max_episode_steps``, ``autoreset_mode``, ``render_mode``, ``target`` and the plain
    environment's keyword arguments; returns the plain id's vector env (e.g. ``GridWorldVectorEnv``) with
    ``task=ReachTask(target)``.
    """
    return _registered(env, "vector_entry_point", FactorVectorEnv)(num_envs, task=ReachTask(target), **kwargs)


class GoalEnv(FactorEnv):
    """Reach a random goal image: a goal-conditioned task for HER (``DynDis/<Name>Goal-v0``).

    ## Description
    The dynamics, factors and images of the plain environment ``env``; each episode draws a goal state,
    and the observation shows the goal's image beside the current one.

    ## Action Space
    The plain environment's: ``Discrete(2 * n_active)``; :attr:`action_effects` says which factor each
    action moves and in which direction.

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
    ``env``: the built plain environment (its source, chosen values and render mode are shared). Through
    ``gym.make`` (:func:`make_goal_env`): the plain environment's id, ``render_mode`` and keyword arguments.

    ## Wrapped
    ``gym.make`` adds :class:`GoalMethods` outside its own wrappers, so the env it returns has
    :meth:`compute_reward` and :meth:`compute_terminated` too. Under other wrappers, reach them with
    ``env.get_wrapper_attr("compute_reward")``.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/GridWorldGoal-v0")
        >>> obs, info = env.reset(seed=0, options={"goal": [0, 0, 0, 0, 0]})
        >>> sorted(obs), info["goal_factors"].tolist()
        (['achieved_goal', 'desired_goal', 'observation'], [0, 0, 0, 0, 0])
    """

    reset_options = frozenset({"factors", "goal"})
    task: GoalTask

    def __init__(self, env: FactorEnv) -> None:
        if not isinstance(env, FactorEnv):
            raise TypeError(f"`env` must be a built DynDis factor environment (a FactorEnv), got {env!r}.")
        super().__init__(env.source, render_mode=env.render_mode, frames=env.frames, task=GoalTask())
        image = self.observation_space
        self.observation_space = spaces.Dict({"observation": image, "achieved_goal": image, "desired_goal": image})
        self._goal_image: npt.NDArray[np.uint8] | None = None

    @property
    def goal(self) -> npt.NDArray[np.int64]:
        """The current episode's goal state."""
        if self.task.goal is None:
            raise gym.error.ResetNeeded("Call `reset()` before reading the goal.")
        return np.asarray(self.task.goal, dtype=np.int64)

    def _observe(self, image: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.uint8]]:
        if self._goal_image is None:
            raise gym.error.ResetNeeded("Call `reset()` before `step()`.")
        return {"observation": image, "achieved_goal": image.copy(), "desired_goal": self._goal_image.copy()}

    def _goal_info(self, info: dict[str, Any]) -> dict[str, Any]:
        goal = self.task.goal
        info.update(goal_factors=np.array(goal, dtype=np.int64), is_success=self._state == goal)
        return info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, npt.NDArray[np.uint8]], dict[str, Any]]:
        """Draw a start and a different goal (or take them from ``options``)."""
        options = dict(options or {})
        goal = options.pop("goal", None)
        self.task.goal = None
        self._goal_image = None
        image, info = super().reset(seed=seed, options=options)
        if goal is None:
            goal_state = self.task.draw_goal(self.factor_space, self.np_random, info["factors"].tolist())
        else:
            goal_state = self.task.set_goal(self.factor_space, goal)
        self._goal_image = self.frames.one(goal_state)
        return self._observe(image), self._goal_info(info)

    def step(self, action: Any) -> tuple[dict[str, npt.NDArray[np.uint8]], SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the plain dynamics; reward 1.0 and terminated on reaching the goal."""
        image, reward, terminated, truncated, info = super().step(action)
        return self._observe(image), reward, terminated, truncated, self._goal_info(info)

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


def make_goal_env(env: str = "DynDis/GridWorld-v0", **env_kwargs: Any) -> GoalEnv:
    """A :class:`GoalEnv` over the plain environment ``env`` (the entry point of ``DynDis/<Name>Goal-v0``).

    Args:
        env: The plain environment id (``"DynDis/GridWorld-v0"``).
        **env_kwargs: ``render_mode`` and the plain environment's keyword arguments.
    """
    return GoalEnv(_registered(env, "entry_point", FactorEnv)(**env_kwargs))


class GoalMethods(gym.Wrapper, RecordConstructorArgs):
    """Give a wrapped goal env the goal methods of the env below: ``compute_reward`` and ``compute_terminated``.

    Gymnasium 1.x wrappers do not forward attributes, but SB3's ``check_env`` calls ``env.compute_reward``
    on the env it is given. This wrapper looks each method up below it with ``get_wrapper_attr`` (so the
    nearest wrapper that defines it wins, e.g. a latent-observation wrapper over a :class:`GoalEnv`) and
    changes nothing else. The ``DynDis/<Name>Goal-v0`` ids apply it through :data:`GOAL_WRAPPERS`; wrap
    any other goal env by hand.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/GridWorldGoal-v0")
        >>> env
        <GoalMethods<TimeLimit<OrderEnforcing<PassiveEnvChecker<GoalEnv<DynDis/GridWorldGoal-v0>>>>>>
        >>> obs, _ = env.reset(seed=0)
        >>> env.compute_reward(obs["desired_goal"], obs["desired_goal"], {})
        1.0
    """

    def __init__(self, env: gym.Env) -> None:
        RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        if not env.has_wrapper_attr("compute_reward"):
            raise TypeError(f"`env` must be a goal env with a `compute_reward` method, got {env}.")

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        """The env's ``compute_reward`` (vectorised over leading batch dimensions)."""
        return self.env.get_wrapper_attr("compute_reward")(achieved_goal, desired_goal, info)

    def compute_terminated(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        """The env's ``compute_terminated`` (vectorised over leading batch dimensions)."""
        return self.env.get_wrapper_attr("compute_terminated")(achieved_goal, desired_goal, info)


#: The ``additional_wrappers`` of the ``DynDis/<Name>Goal-v0`` ids: ``gym.make`` applies them outside
#: ``TimeLimit``, so the env it returns has ``compute_reward`` (see :class:`GoalMethods`).
GOAL_WRAPPERS: tuple[WrapperSpec, ...] = (GoalMethods.wrapper_spec(),)
