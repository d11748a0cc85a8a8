"""The RL task ids: ``DynDis/<Name>Reach-v0`` (fixed target) and ``DynDis/<Name>Goal-v0`` (a goal image per episode).

Both are built on the plain environment named by ``env``, a registered id such as ``"DynDis/GridWorld-v0"``:
the class registered for that id is built directly, never through ``gym.make``. A Reach env *is* that
class with a :class:`~dyndis_envs.tasks.ReachTask` (and its vector env, the id's vector class with the
same task); a Goal env is a :class:`GoalEnv` over it.

Both have native vector envs: the plain id's vector class with the Reach task, and :class:`GoalVectorEnv`,
which keeps one goal per sub-env.

``gym.make`` wraps every env in ``PassiveEnvChecker``, ``OrderEnforcing`` and ``TimeLimit``, and Gymnasium 1.x
wrappers do not forward unknown attributes, so ``gym.make("DynDis/<Name>Goal-v0").compute_reward`` does not
exist: ``get_wrapper_attr("compute_reward")`` reaches it (SB3's HER does so through ``VecEnv.env_method``),
and :class:`GoalMethods` adds it to a wrapped env (SB3's ``check_env`` calls ``env.compute_reward``). The
Goal ids cannot list ``GoalMethods`` as ``additional_wrappers``: ``gym.make_vec`` refuses the
``vector_entry_point`` of an id that has any.

To pose a task on an environment built by hand, pass it directly: ``GridWorldEnv(task=ReachTask(...))``,
``GridWorldVectorEnv(8, task=ReachTask(...))``, ``GoalEnv(GridWorldEnv(...))``,
``GoalVectorEnv(8, single_env=GoalEnv(GridWorldEnv(...)))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils import RecordConstructorArgs
from gymnasium.vector import AutoresetMode

from dyndis_envs.factor_env import FactorEnv
from dyndis_envs.factor_vector_env import FactorVectorEnv
from dyndis_envs.tasks import GoalTask, ReachTask

__all__ = [
    "GoalEnv",
    "GoalMethods",
    "GoalVectorEnv",
    "make_goal_env",
    "make_goal_vector_env",
    "make_reach_env",
    "make_reach_vector_env",
]


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
    ``Dict(observation, achieved_goal, desired_goal)``, each the plain environment's image space.
    ``observation`` is the current image with the plain environment's ``observation_noise`` (if any);
    ``achieved_goal`` is the clean image of the current state and ``desired_goal`` the clean image of the
    goal state: goals are exact, so that :meth:`compute_reward` and HER's relabelling stay exact under
    noise. (A policy that should see only noisy pixels must not read ``achieved_goal``.)

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
    ``env``: the built plain environment (its source, chosen values, render mode and observation noise are
    shared). Through ``gym.make`` (:func:`make_goal_env`): the plain environment's id, ``render_mode`` and
    keyword arguments.

    ## Wrapped
    ``gym.make`` wraps the env in Gymnasium's ``PassiveEnvChecker``, ``OrderEnforcing`` and ``TimeLimit``,
    which do not forward :meth:`compute_reward`: reach it with ``env.get_wrapper_attr("compute_reward")``
    (as SB3's HER does through ``VecEnv.env_method``), or wrap the env in :class:`GoalMethods` (SB3's
    ``check_env`` calls ``env.compute_reward``). The ids cannot add that wrapper themselves: Gymnasium
    refuses the native vector env (:class:`GoalVectorEnv`) of an id that lists ``additional_wrappers``.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/GridWorldGoal-v0")
        >>> obs, info = env.reset(seed=0, options={"goal": [0, 0, 0, 0, 0]})
        >>> sorted(obs), info["goal_factors"].tolist()
        (['achieved_goal', 'desired_goal', 'observation'], [0, 0, 0, 0, 0])
        >>> env.get_wrapper_attr("compute_reward")(obs["desired_goal"], obs["desired_goal"], info)
        1.0
    """

    reset_options = frozenset({"factors", "goal"})
    task: GoalTask

    def __init__(self, env: FactorEnv) -> None:
        if not isinstance(env, FactorEnv):
            raise TypeError(f"`env` must be a built DynDis factor environment (a FactorEnv), got {env!r}.")
        super().__init__(
            env.source, render_mode=env.render_mode, frames=env.frames, task=GoalTask(),
            observation_noise=env.observation_noise,
        )
        image = self.observation_space
        self.observation_space = spaces.Dict({"observation": image, "achieved_goal": image, "desired_goal": image})
        self._goal_image: npt.NDArray[np.uint8] | None = None

    @property
    def goal(self) -> npt.NDArray[np.int64]:
        """The current episode's goal state."""
        if self.task.goal is None:
            raise gym.error.ResetNeeded("Call `reset()` before reading the goal.")
        return np.asarray(self.task.goal, dtype=np.int64)

    def _begin_episode(self, options: dict[str, Any]) -> None:
        """Set the start (as the plain env does), then draw a goal other than it, or take ``options["goal"]``."""
        self.task.goal = None
        self._goal_image = None
        super()._begin_episode(options)
        if "goal" in options:
            goal = self.task.set_goal(self.factor_space, options["goal"])
        else:
            goal = self.task.draw_goal(self.factor_space, self.np_random, self.state.tolist())
        self._goal_image = self.frames.one(goal)

    def _observe(self, image: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.uint8]]:
        """The noisy ``observation`` beside the clean ``achieved_goal`` (``image``) and ``desired_goal``."""
        if self._goal_image is None:
            raise gym.error.ResetNeeded("Call `reset()` before `step()`.")
        observation = self._noisy(image) if self.observation_noise else image.copy()
        return {"observation": observation, "achieved_goal": image, "desired_goal": self._goal_image.copy()}

    def _info(self) -> dict[str, Any]:
        goal = self.task.goal
        return {**super()._info(), "goal_factors": np.array(goal, dtype=np.int64), "is_success": self._state == goal}

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


class GoalVectorEnv(FactorVectorEnv):
    """Natively batched :class:`GoalEnv`: ``num_envs`` goal episodes, stepped together in NumPy.

    Sub-env ``i`` keeps its own goal and draws its start, then its goal, then its observation noise from its
    own generator (seeded ``seed + i`` by ``reset(seed=seed)``), in the order a single :class:`GoalEnv`
    draws them, so it reproduces exactly a single env seeded ``seed + i``. Observations are dicts of
    batched images (``observation`` noisy, ``achieved_goal`` and ``desired_goal`` clean, as in
    :class:`GoalEnv`); infos hold ``factors``, ``goal_factors`` and ``is_success`` with Gymnasium's ``_key``
    masks; rewards and terminations come from :meth:`GoalTask.goal_outcome
    <dyndis_envs.tasks.GoalTask.goal_outcome>` over all sub-envs at once.

    Args:
        num_envs: Number of sub-environments.
        single_env: The :class:`GoalEnv` whose factor space, frames, task and observation noise the
            sub-environments share (its own episode is not used).
        max_episode_steps: Truncate each episode after this many steps (default 100, the Goal ids'; None:
            never).
        autoreset_mode: ``NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``, as in Gymnasium 1.x.
        render_mode: None or ``"rgb_array"`` (:meth:`render` gives the clean image of every sub-env's state).

    ``reset(options=...)`` understands ``"factors"`` and ``"goal"`` (one state for all sub-envs or one per
    sub-env, shape (num_envs, n_factors)) and ``"reset_mask"``.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> vec = gym.make_vec("DynDis/GridWorldGoal-v0", num_envs=4)
        >>> obs, info = vec.reset(seed=0)
        >>> obs["desired_goal"].shape, info["goal_factors"].shape
        ((4, 64, 64, 3), (4, 5))
        >>> vec.compute_reward(obs["achieved_goal"], obs["desired_goal"], info).tolist()
        [0.0, 0.0, 0.0, 0.0]
    """

    reset_options = frozenset({"factors", "goal", "reset_mask"})
    env: GoalEnv
    task: GoalTask

    def __init__(
        self,
        num_envs: int = 1,
        *,
        single_env: GoalEnv,
        max_episode_steps: int | None = 100,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
    ) -> None:
        self._check_single_env(single_env)
        super().__init__(
            num_envs, max_episode_steps=max_episode_steps, autoreset_mode=autoreset_mode, render_mode=render_mode,
            single_env=single_env,
        )
        self._goals = np.zeros((self.num_envs, self.factor_space.n_factors), dtype=np.int64)
        self._goal_images = np.zeros((self.num_envs, *self.env.source.image_shape), dtype=np.uint8)

    def _check_single_env(self, env: Any) -> None:
        """Raise unless ``env`` is a :class:`GoalEnv`."""
        if not isinstance(env, GoalEnv):
            raise TypeError(f"`single_env` must be a GoalEnv, e.g. GoalEnv(GridWorldEnv()), got {env!r}.")

    @property
    def goals(self) -> npt.NDArray[np.int64]:
        """Current goal states, shape (num_envs, n_factors)."""
        return self._goals.copy()

    def _begin_episodes(self, envs: npt.NDArray[np.intp], options: dict[str, Any]) -> None:
        """Set the starts as the plain vector env does, then a goal per sub-env: drawn, or ``options["goal"]``."""
        super()._begin_episodes(envs, options)
        if "goal" in options:
            given = self.factor_space.check_states(options["goal"], "options['goal']")
            self._goals[envs] = np.broadcast_to(given, self._goals.shape)[envs]
        else:
            for i in envs:
                self._goals[i] = self.task.sample_goal(self.factor_space, self._rng(i), self._states[i].tolist())
        self._goal_images[envs] = self.frames.batch(self._goals[envs])

    def _observe(self, envs: npt.NDArray[np.intp]) -> dict[str, npt.NDArray[np.uint8]]:
        images = self.frames.batch(self._states[envs])
        observation = self._noisy(images, envs) if self.observation_noise else images.copy()
        return {"observation": observation, "achieved_goal": images, "desired_goal": self._goal_images[envs]}

    def _outcome(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        return self.task.goal_outcome(self._states, self._goals)

    def _info(self, mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
        reached = (self._states == self._goals).all(axis=1)
        return {
            **super()._info(mask),
            "goal_factors": np.where(mask[:, None], self._goals, 0),
            "_goal_factors": mask.copy(),
            "is_success": reached & mask,
            "_is_success": mask.copy(),
        }

    def compute_reward(
        self, achieved_goal: npt.NDArray[np.uint8], desired_goal: npt.NDArray[np.uint8], info: Any
    ) -> npt.NDArray[np.float64] | float:
        """:meth:`GoalEnv.compute_reward`: 1.0 where the images are equal, over leading batch dimensions."""
        return self.env.compute_reward(achieved_goal, desired_goal, info)

    def compute_terminated(
        self, achieved_goal: npt.NDArray[np.uint8], desired_goal: npt.NDArray[np.uint8], info: Any
    ) -> npt.NDArray[np.bool_] | bool:
        """:meth:`GoalEnv.compute_terminated`, vectorised like :meth:`compute_reward`."""
        return self.env.compute_terminated(achieved_goal, desired_goal, info)


def make_goal_vector_env(
    num_envs: int = 1,
    *,
    env: str = "DynDis/GridWorld-v0",
    max_episode_steps: int | None = 100,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    render_mode: str | None = None,
    **env_kwargs: Any,
) -> GoalVectorEnv:
    """Natively batched :func:`make_goal_env` (the vector entry point of ``DynDis/<Name>Goal-v0``).

    Args:
        num_envs: Number of sub-environments.
        env: The plain environment id (``"DynDis/GridWorld-v0"``).
        max_episode_steps: Episode length (``gym.make_vec`` passes the id's, 100).
        autoreset_mode: ``NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``.
        render_mode: None or ``"rgb_array"``.
        **env_kwargs: The plain environment's keyword arguments (``observation_noise`` among them).
    """
    single_env = make_goal_env(env, render_mode=render_mode, **env_kwargs)
    return GoalVectorEnv(
        num_envs, single_env=single_env, max_episode_steps=max_episode_steps, autoreset_mode=autoreset_mode,
        render_mode=render_mode,
    )


class GoalMethods(gym.Wrapper, RecordConstructorArgs):
    """Give a wrapped goal env the goal methods of the env below: ``compute_reward`` and ``compute_terminated``.

    Gymnasium 1.x wrappers do not forward attributes, but SB3's ``check_env`` calls ``env.compute_reward``
    on the env it is given. This wrapper looks each method up below it with ``get_wrapper_attr`` (so the
    nearest wrapper that defines it wins, e.g. a latent-observation wrapper over a :class:`GoalEnv`) and
    changes nothing else. Wrap the env ``gym.make("DynDis/<Name>Goal-v0")`` returns in it where code calls
    ``env.compute_reward`` directly; ``gym.make_vec(..., vectorization_mode="sync", wrappers=[GoalMethods])``
    wraps every sub-env.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = GoalMethods(gym.make("DynDis/GridWorldGoal-v0"))
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

