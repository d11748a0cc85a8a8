"""The task API: PureDynamics, ReachTask, GoalTask, and a custom task on single and native vector envs."""

import pickle
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from dyndis_envs.factors import Factor, FactorSpace
from dyndis_envs.gridworld import GridWorldEnv, GridWorldVectorEnv
from dyndis_envs.tasks import GoalTask, PureDynamics, ReachTask, Task

SPACE = FactorSpace([Factor("x", (0, 1, 2)), Factor("y", tuple(range(4))), Factor("c", ("red",))])


class FirstRowIsLava(Task):
    """A custom task: starts in column 0, reward -1 and terminated on entering row 0, else 0.1."""

    def sample_start(self, space, rng):
        return [int(rng.integers(1, space.sizes[0])), 0, 0, 0, 0]

    def outcome(self, states):
        lava = states[:, 0] == 0
        return np.where(lava, -1.0, 0.1), lava


def test__pure_dynamics__is_the_default():
    env = GridWorldEnv()
    assert isinstance(env.task, PureDynamics) and repr(env.task) == "PureDynamics()"
    rewards, terminated = PureDynamics().outcome(np.zeros((3, 5), dtype=np.int64))
    assert rewards.dtype == np.float64 and terminated.dtype == np.bool_
    np.testing.assert_array_equal(rewards, 0.0)
    assert not terminated.any()


def test__reach_task__bind_fills_in_and_checks_the_target():
    task = ReachTask()
    assert task.target is None and repr(task) == "ReachTask(target=None)"
    bound = task.bind(SPACE)
    assert bound is not task and task.target is None
    assert bound.target.dtype == np.int64 and bound.target.tolist() == [1, 2, 0]
    assert ReachTask([2, 3, 0]).bind(SPACE).target.tolist() == [2, 3, 0]
    with pytest.raises(ValueError, match=re.escape("`target` out of range")):
        ReachTask([3, 0, 0]).bind(SPACE)
    with pytest.raises(ValueError, match=re.escape("`target` must hold 3 integer value indices (x, y, c) per state")):
        ReachTask([0, 0]).bind(SPACE)
    with pytest.raises(RuntimeError, match=re.escape("This ReachTask is not bound to an environment")):
        task.outcome(np.zeros((1, 3), dtype=np.int64))


def test__reach_task__outcome_and_starts():
    task = ReachTask([1, 2, 0]).bind(SPACE)
    rewards, terminated = task.outcome(np.array([[1, 2, 0], [0, 2, 0], [1, 2, 0]]))
    np.testing.assert_array_equal(rewards, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(terminated, [True, False, True])
    rng = np.random.default_rng(0)
    starts = {tuple(task.sample_start(SPACE, rng)) for _ in range(400)}
    assert len(starts) == SPACE.n_states - 1 and (1, 2, 0) not in starts


def test__goal_task__goal_per_episode():
    task = GoalTask()
    with pytest.raises(gym.error.ResetNeeded):
        task.outcome(np.zeros((1, 3), dtype=np.int64))
    rng = np.random.default_rng(0)
    goals = {tuple(task.draw_goal(SPACE, rng, [0, 0, 0])) for _ in range(400)}
    assert len(goals) == SPACE.n_states - 1 and (0, 0, 0) not in goals
    assert task.set_goal(SPACE, np.array([2, 1, 0])) == [2, 1, 0] == task.goal
    np.testing.assert_array_equal(task.outcome(np.array([[2, 1, 0], [2, 2, 0]]))[1], [True, False])
    with pytest.raises(ValueError, match=re.escape("`options['goal']` out of range")):
        task.set_goal(SPACE, [0, 4, 0])


def test__custom_task__on_a_single_env():
    env = GridWorldEnv(grid_shape=(3, 3), task=FirstRowIsLava())
    check_env(env, skip_render_check=True)
    _, info = env.reset(seed=0)
    assert info["factors"][0] in (1, 2) and info["factors"][1] == 0
    env.reset(options={"factors": [1, 1, 0, 0, 0]})
    assert env.step(2)[1:3] == (0.1, False)  # east_west + 1
    assert env.step(1)[1:3] == (-1.0, True)  # north_south - 1: row 0
    clone = pickle.loads(pickle.dumps(env))
    assert isinstance(clone.task, FirstRowIsLava)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test__custom_task__native_vector_env_matches_single_envs(mode):
    kwargs = {"grid_shape": (3, 3)}
    native = GridWorldVectorEnv(4, max_episode_steps=5, autoreset_mode=mode, task=FirstRowIsLava(), **kwargs)
    assert isinstance(native.task, FirstRowIsLava) and native.task is native.env.task
    sync = SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(GridWorldEnv(task=FirstRowIsLava(), **kwargs), 5)] * 4, autoreset_mode=mode
    )
    assert data_equivalence(native.reset(seed=1), sync.reset(seed=1), exact=True)
    rng = np.random.default_rng(0)
    terminations = 0
    for step in range(30):
        actions = rng.integers(0, 4, 4)
        out = native.step(actions)
        assert data_equivalence(out, sync.step(actions), exact=True), f"step {step}"
        terminations += int(out[2].sum())
    assert terminations > 0


def test__bad_tasks():
    message = "`task` must be a dyndis_envs.tasks.Task (e.g. ReachTask()), got 'reach'."
    with pytest.raises(TypeError, match=re.escape(message)):
        GridWorldEnv(task="reach")
    message = "Pass either `single_env` or environment keyword arguments, not both (got ['task'])."
    with pytest.raises(TypeError, match=re.escape(message)):
        GridWorldVectorEnv(2, single_env=GridWorldEnv(), task=ReachTask())
    with pytest.raises(TypeError, match="abstract"):
        Task()
