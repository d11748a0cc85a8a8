"""The Reach and Goal ids: checkers, rewards, terminations, HER's compute_reward, native vector envs."""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dyndis_envs
from dyndis_envs.gridworld import GridWorldEnv, GridWorldVectorEnv
from dyndis_envs.task_envs import (
    GoalEnv,
    GoalMethods,
    GoalVectorEnv,
    make_goal_env,
    make_goal_vector_env,
    make_reach_env,
    make_reach_vector_env,
)
from dyndis_envs.tasks import GoalTask, ReachTask
from tests.envs.fixtures import fast_kwargs

GOAL_IDS = [task_id for task_id in dyndis_envs.TASK_IDS if "Goal" in task_id]


@pytest.mark.parametrize("task_id", dyndis_envs.TASK_IDS)
def test__checkers(task_id):
    env = gym.make(task_id, **fast_kwargs(task_id))
    check_env(env.unwrapped)
    # SB3's checker calls compute_reward on the env it is given: GoalMethods gives the wrapped Goal env one
    sb3_check_env(GoalMethods(env) if "Goal" in task_id else env)
    assert env.spec.max_episode_steps == 100


@pytest.mark.parametrize("goal_id", GOAL_IDS)
def test__goal__ids_have_a_native_vector_env_and_no_additional_wrappers(goal_id):
    """make_vec refuses the vector entry point of an id with additional wrappers, so the Goal ids list none."""
    assert gym.spec(goal_id).additional_wrappers == ()
    vec = gym.make_vec(goal_id, num_envs=2, **fast_kwargs(goal_id))  # the default mode picks the native env
    assert type(vec) is GoalVectorEnv and vec.max_episode_steps == 100
    explicit = gym.make_vec(goal_id, num_envs=2, vectorization_mode="vector_entry_point", **fast_kwargs(goal_id))
    assert type(explicit) is GoalVectorEnv


def test__goal_methods__give_gym_makes_env_the_goal_methods():
    env = GoalMethods(gym.make("DynDis/GridWorldGoal-v0", grid_shape=(3, 3)))
    assert str(env) == "<GoalMethods<TimeLimit<OrderEnforcing<PassiveEnvChecker<GoalEnv<DynDis/GridWorldGoal-v0>>>>>>"
    obs, info = env.reset(seed=0, options={"factors": [0, 0, 0, 0, 0], "goal": [1, 0, 0, 0, 0]})
    assert env.compute_reward(obs["achieved_goal"], obs["desired_goal"], info) == 0.0
    assert env.compute_terminated(obs["desired_goal"], obs["desired_goal"], info)
    vec = gym.make_vec(
        "DynDis/GridWorldGoal-v0", num_envs=2, vectorization_mode="sync", wrappers=[GoalMethods], grid_shape=(3, 3)
    )
    assert all(type(sub_env) is GoalMethods for sub_env in vec.envs)


def test__goal_methods__forward_to_the_nearest_definition_below():
    class Doubled(gym.Wrapper):
        def compute_reward(self, achieved_goal, desired_goal, info):
            return 2 * self.env.unwrapped.compute_reward(achieved_goal, desired_goal, info)

        def compute_terminated(self, achieved_goal, desired_goal, info):
            return "mine"

    env = GoalMethods(gym.wrappers.TimeLimit(Doubled(GoalEnv(GridWorldEnv(grid_shape=(3, 3)))), 5))
    obs, _ = env.reset(seed=0)
    assert env.compute_reward(obs["desired_goal"], obs["desired_goal"], {}) == 2.0
    assert env.compute_terminated(obs["desired_goal"], obs["desired_goal"], {}) == "mine"
    with pytest.raises(TypeError, match=re.escape("`env` must be a goal env with a `compute_reward` method")):
        GoalMethods(gym.make("DynDis/GridWorld-v0"))


@pytest.mark.parametrize("task_id", dyndis_envs.TASK_IDS)
def test__built_as_the_plain_class_without_gym_make(task_id, monkeypatch):
    def no_make(*args, **kwargs):
        raise AssertionError("a task env must not call gym.make")

    spec = gym.spec(task_id)
    plain_class = gym.envs.registration.load_env_creator(gym.spec(spec.kwargs["env"]).entry_point)
    creator = gym.envs.registration.load_env_creator(spec.entry_point)
    monkeypatch.setattr(gym, "make", no_make)
    env = creator(**spec.kwargs, **fast_kwargs(task_id))
    if "Reach" in task_id:
        assert type(env) is plain_class and isinstance(env.task, ReachTask)
    else:
        assert type(env) is GoalEnv and isinstance(env.task, GoalTask)


def test__reach__is_the_plain_env_with_a_reach_task():
    env = gym.make("DynDis/GridWorldReach-v0", target=[0, 0, 0, 0, 0], grid_shape=(3, 3))
    assert gym.spec("DynDis/GridWorldReach-v0").kwargs == {"env": "DynDis/GridWorld-v0"}
    assert type(env.unwrapped) is GridWorldEnv and env.unwrapped.factor_space.sizes == (3, 3, 1, 1, 1)
    assert env.unwrapped.task.target.tolist() == [0, 0, 0, 0, 0]
    assert repr(env.unwrapped.task) == "ReachTask(target=[0, 0, 0, 0, 0])"
    vec = gym.make_vec("DynDis/GridWorldReach-v0", num_envs=2, target=[0, 0, 0, 0, 0])
    assert type(vec) is GridWorldVectorEnv and vec.task.target.tolist() == [0, 0, 0, 0, 0]
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP and vec.max_episode_steps == 100


def test__reach__reward_and_termination_exactly_at_the_target():
    env = gym.make("DynDis/GridWorldReach-v0", target=[0, 0, 0, 0, 0])
    env.reset(seed=0, options={"factors": [2, 0, 0, 0, 0]})
    assert env.step(1)[1:3] == (0.0, False)  # north_south - 1: now at 1
    assert env.step(1)[1:3] == (1.0, True)


def test__reach__default_target_is_the_middle_and_starts_avoid_it():
    env = gym.make("DynDis/GridWorldReach-v0", grid_shape=(3, 1)).unwrapped
    assert env.task.target.tolist() == [1, 0, 0, 0, 0]
    env.reset(seed=0)
    starts = {env.reset()[1]["factors"][0] for _ in range(100)}
    assert starts == {0, 2}


def test__reach__bad_target():
    with pytest.raises(ValueError, match=re.escape("`target` out of range")):
        gym.make("DynDis/GridWorldReach-v0", target=[9, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=re.escape("`target` must hold 5 integer value indices")):
        gym.make("DynDis/GridWorldReach-v0", target=[0, 0])
    with pytest.raises(ValueError, match=re.escape("`target` must be one state of shape (5,), got [[0, 0, 0, 0, 0]].")):
        gym.make("DynDis/GridWorldReach-v0", target=[[0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match=re.escape("`target` out of range")):
        gym.make_vec("DynDis/GridWorldReach-v0", num_envs=2, target=[9, 0, 0, 0, 0])


@pytest.mark.parametrize("factory", [make_reach_env, make_reach_vector_env, make_goal_env, make_goal_vector_env])
def test__factories__env_must_be_a_factor_env_id(factory):
    message = "`env` must be an environment id such as 'DynDis/GridWorld-v0', got 3."
    with pytest.raises(TypeError, match=re.escape(message)):
        factory(env=3)
    with pytest.raises(TypeError, match=re.escape("`env`='CartPole-v1' is not a DynDis factor environment")):
        factory(env="CartPole-v1")


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test__reach__native_vector_env_matches_sync(mode):
    kwargs = {"grid_shape": (3, 3), "target": [1, 1, 0, 0, 0], "max_episode_steps": 6}
    native = gym.make_vec("DynDis/GridWorldReach-v0", num_envs=5, autoreset_mode=mode, **kwargs)
    sync = gym.make_vec(
        "DynDis/GridWorldReach-v0", num_envs=5, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode},
        **kwargs,
    )
    assert data_equivalence(native.reset(seed=3), sync.reset(seed=3), exact=True)
    rng = np.random.default_rng(1)
    terminations = 0
    for step in range(40):
        actions = rng.integers(0, 4, 5)
        out = native.step(actions)
        assert data_equivalence(out, sync.step(actions), exact=True), f"step {step}"
        terminations += int(out[2].sum())
        np.testing.assert_array_equal(out[1], out[2].astype(float))
    assert terminations > 0


def test__goal__observation_reward_and_compute_reward_agree():
    env = gym.make("DynDis/GridWorldGoal-v0")
    obs, info = env.reset(seed=0, options={"factors": [0, 0, 0, 0, 0], "goal": [0, 2, 0, 0, 0]})
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    np.testing.assert_array_equal(obs["observation"], obs["achieved_goal"])
    assert not info["is_success"] and info["goal_factors"].tolist() == [0, 2, 0, 0, 0]
    compute_reward = env.get_wrapper_attr("compute_reward")
    for expected in (0.0, 1.0):
        obs, reward, terminated, _, info = env.step(2)  # east_west + 1
        assert reward == expected == compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
        assert terminated == info["is_success"] == bool(expected)


def test__goal__compute_reward_is_vectorised():
    env = gym.make("DynDis/GridWorldGoal-v0").unwrapped
    images = env.frames.batch(env.factor_space.all_states()[:6])
    rewards = env.compute_reward(images, images[[0, 1, 2, 0, 0, 0]], [{}] * 6)
    np.testing.assert_array_equal(rewards, [1, 1, 1, 0, 0, 0])
    assert rewards.dtype == np.float64
    assert env.compute_reward(images[0], images[0], {}) == 1.0


def test__goal__goals_differ_from_starts_and_are_seeded():
    a, b = gym.make("DynDis/GridWorldGoal-v0"), gym.make("DynDis/GridWorldGoal-v0")
    for seed in range(20):
        (obs_a, info_a), (obs_b, info_b) = a.reset(seed=seed), b.reset(seed=seed)
        assert info_a["factors"].tolist() != info_a["goal_factors"].tolist()
        assert data_equivalence((obs_a, info_a), (obs_b, info_b), exact=True)


def test__goal__built_over_a_plain_env_sharing_its_frames():
    plain = GridWorldEnv(grid_shape=(3, 3), render_mode="rgb_array")
    env = GoalEnv(plain)
    assert env.frames is plain.frames and env.render_mode == "rgb_array"
    assert env.action_effects == plain.action_effects
    with pytest.raises(gym.error.ResetNeeded):
        env.goal  # noqa: B018
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(env.goal, info["goal_factors"])
    np.testing.assert_array_equal(env.render(), obs["observation"])
    with pytest.raises(TypeError, match=re.escape("`env` must be a built DynDis factor environment (a FactorEnv)")):
        GoalEnv("DynDis/GridWorld-v0")


def test__goal__vector_envs_take_only_their_own_single_env():
    message = "`single_env` must be a FactorEnv observing images (a Box space), got GoalEnv; a GoalEnv has its own"
    with pytest.raises(ValueError, match=re.escape(message)):
        GridWorldVectorEnv(2, single_env=GoalEnv(GridWorldEnv()))
    with pytest.raises(TypeError, match=re.escape("`single_env` must be a GoalEnv, e.g. GoalEnv(GridWorldEnv())")):
        GoalVectorEnv(2, single_env=GridWorldEnv())


def test__goal__bad_options():
    env = gym.make("DynDis/GridWorldGoal-v0")
    with pytest.raises(ValueError, match=re.escape("Unknown reset option(s) ['target']; allowed: ['factors', 'goal']")):
        env.reset(options={"target": [0, 0, 0, 0, 0]})
    with pytest.raises(ValueError, match=re.escape("`options['goal']` out of range")):
        env.reset(options={"goal": [7, 0, 0, 0, 0]})


@pytest.mark.slow
def test__goal__trains_with_sb3_her_and_dqn():
    from stable_baselines3 import DQN, HerReplayBuffer

    env = gym.make("DynDis/GridWorldGoal-v0", grid_shape=(3, 3))
    model = DQN(
        "MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, buffer_size=400, learning_starts=64,
        batch_size=16, seed=0, policy_kwargs={"net_arch": [32]},
    )
    model.learn(150)
    assert model.replay_buffer.size() > 0


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test__goal__native_vector_env_matches_sync(mode):
    """Observations, rewards, terminations, truncations, infos and autoresets equal SyncVectorEnv's."""
    kwargs = {"grid_shape": (2, 2), "max_episode_steps": 6}
    native = gym.make_vec("DynDis/GridWorldGoal-v0", num_envs=5, autoreset_mode=mode, **kwargs)
    sync = gym.make_vec(
        "DynDis/GridWorldGoal-v0", num_envs=5, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode},
        **kwargs,
    )
    assert native.metadata["autoreset_mode"] == mode
    assert native.single_observation_space == sync.single_observation_space
    assert data_equivalence(native.reset(seed=3), sync.reset(seed=3), exact=True)
    rng = np.random.default_rng(1)
    seen = {"terminated": 0, "truncated": 0}
    for step in range(40):
        actions = rng.integers(0, 4, 5)
        out = native.step(actions)
        assert data_equivalence(out, sync.step(actions), exact=True), f"step {step}"
        obs, rewards, terminated, truncated, infos = out
        np.testing.assert_array_equal(rewards, terminated.astype(float))
        if mode is AutoresetMode.NEXT_STEP:  # the returned observation is the one that earned the reward
            recomputed = native.compute_reward(obs["achieved_goal"], obs["desired_goal"], infos)
            np.testing.assert_array_equal(recomputed, rewards)
            np.testing.assert_array_equal(infos["is_success"], terminated)
        seen["terminated"] += int(terminated.sum())
        seen["truncated"] += int((truncated & ~terminated).sum())
    assert seen["terminated"] > 0 and seen["truncated"] > 0
    options = {"factors": [1, 0, 0, 0, 0], "goal": [0, 1, 0, 0, 0]}
    assert data_equivalence(native.reset(seed=5, options=dict(options)), sync.reset(seed=5, options=dict(options)),
                            exact=True)
    mask = np.array([False, True, False, True, False])
    assert data_equivalence(
        native.reset(options={"reset_mask": mask}), sync.reset(options={"reset_mask": mask}), exact=True
    )


def test__goal__vector_env_goals_per_sub_env_and_bad_options():
    vec = make_goal_vector_env(3, grid_shape=(3, 3))
    starts = np.array([[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [2, 2, 0, 0, 0]])
    obs, info = vec.reset(seed=0, options={"factors": starts, "goal": starts[::-1]})
    np.testing.assert_array_equal(vec.goals, starts[::-1])
    np.testing.assert_array_equal(info["is_success"], [False, True, False])
    np.testing.assert_array_equal(obs["desired_goal"], vec.render_states(starts[::-1]))
    np.testing.assert_array_equal(obs["observation"], obs["achieved_goal"])
    assert not np.shares_memory(obs["observation"], obs["achieved_goal"])
    _, info = vec.reset(seed=0, options={"factors": starts})  # drawn goals avoid the given starts
    assert not info["is_success"].any()
    with pytest.raises(ValueError, match=re.escape("`options['goal']` out of range")):
        vec.reset(options={"goal": [7, 0, 0, 0, 0]})
    with pytest.raises(ValueError, match=re.escape("Unknown reset option(s) ['target']; allowed: ['factors', 'goal'")):
        vec.reset(options={"target": [0, 0, 0, 0, 0]})
