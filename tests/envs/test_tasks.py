"""Reach and Goal tasks: checkers, rewards, terminations, HER's compute_reward, native vector Reach."""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dyndis_envs
from tests.envs.conftest import FAST_KWARGS


def _plain(task_id):
    return task_id.replace("Reach", "").replace("Goal", "")


@pytest.mark.parametrize("task_id", dyndis_envs.TASK_IDS)
def test__checkers(task_id):
    env = gym.make(task_id, **FAST_KWARGS[_plain(task_id)])
    check_env(env.unwrapped)
    # SB3's checker calls compute_reward on the env itself, which Gymnasium 1.x wrappers do not forward
    sb3_check_env(env.unwrapped if "Goal" in task_id else env)
    assert env.spec.max_episode_steps == 100


def test__reach__reward_and_termination_exactly_at_the_target():
    env = gym.make("DynDis/GridWorldReach-v0", target=[0, 0, 0, 0, 0])
    np.testing.assert_array_equal(env.unwrapped.target_image, env.reset(options={"factors": [0, 0, 0, 0, 0]})[0])
    env.reset(seed=0, options={"factors": [2, 0, 0, 0, 0]})
    assert env.step(1)[1:3] == (0.0, False)  # north_south - 1: now at 1
    assert env.step(1)[1:3] == (1.0, True)


def test__reach__default_target_is_the_middle_and_starts_avoid_it():
    env = gym.make("DynDis/GridWorldReach-v0", grid_shape=(3, 1)).unwrapped
    assert env.target.tolist() == [1, 0, 0, 0, 0]
    env.reset(seed=0)
    starts = {env.reset()[1]["factors"][0] for _ in range(100)}
    assert starts == {0, 2}


def test__reach__bad_target():
    with pytest.raises(ValueError, match=re.escape("`target` out of range")):
        gym.make("DynDis/GridWorldReach-v0", target=[9, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=re.escape("`target` must hold 5 integer value indices")):
        gym.make("DynDis/GridWorldReach-v0", target=[0, 0])
    with pytest.raises(TypeError, match=re.escape("`env` must be an environment id")):
        dyndis_envs.tasks.ReachEnv(env=3)


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
