"""The SB3 VecEnv adapter gives exactly what SB3's DummyVecEnv over single envs gives."""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import dyndis_envs  # noqa: F401
from dyndis_learn.rl import SB3VecEnv, make_sb3_vec_env, split_vector_infos

KWARGS = {"grid_shape": (3, 3), "target": [1, 1, 0, 0, 0], "max_episode_steps": 5}


def test__matches_dummy_vec_env_through_terminations_and_truncations():
    adapter = make_sb3_vec_env("DynDis/GridWorldReach-v0", n_envs=4, seed=11, **KWARGS)
    dummy = DummyVecEnv([lambda: gym.make("DynDis/GridWorldReach-v0", **KWARGS) for _ in range(4)])
    dummy.seed(11)
    assert data_equivalence(adapter.reset(), dummy.reset(), exact=True)
    assert data_equivalence(adapter.reset_infos, dummy.reset_infos, exact=True)
    rng = np.random.default_rng(0)
    seen = {"terminated": 0, "truncated": 0}
    for step in range(60):
        actions = rng.integers(0, 4, 4)
        adapter.step_async(actions)
        dummy.step_async(actions)
        ours, theirs = adapter.step_wait(), dummy.step_wait()
        assert data_equivalence(ours, theirs, exact=True), f"step {step}"
        assert data_equivalence(adapter.reset_infos, dummy.reset_infos, exact=True), f"step {step}"
        for info, done in zip(ours[3], ours[2]):
            if done:
                seen["truncated" if info["TimeLimit.truncated"] else "terminated"] += 1
    assert seen["terminated"] > 0 and seen["truncated"] > 0


def _plain(value):
    """``value`` with plain containers and scalars: DummyVecEnv gives OrderedDicts and bools where the adapter
    gives dicts and ``np.bool_`` (the same data)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value.item() if isinstance(value, np.generic) else value


def test__goal__matches_dummy_vec_env_with_dict_observations():
    """Over the native Goal vector env: Dict observations, terminal observations, is_success, as DummyVecEnv."""
    kwargs = {"grid_shape": (2, 2), "max_episode_steps": 5, "observation_noise": 2}
    adapter = make_sb3_vec_env("DynDis/GridWorldGoal-v0", n_envs=4, seed=11, **kwargs)
    dummy = DummyVecEnv([lambda: gym.make("DynDis/GridWorldGoal-v0", **kwargs) for _ in range(4)])
    dummy.seed(11)
    assert adapter.observation_space == dummy.observation_space
    assert data_equivalence(_plain(adapter.reset()), _plain(dummy.reset()), exact=True)
    assert data_equivalence(_plain(adapter.reset_infos), _plain(dummy.reset_infos), exact=True)
    rng = np.random.default_rng(0)
    seen = {"terminated": 0, "truncated": 0}
    for step in range(40):
        actions = rng.integers(0, 4, 4)
        adapter.step_async(actions)
        dummy.step_async(actions)
        (obs, rewards, dones, infos), theirs = adapter.step_wait(), dummy.step_wait()
        assert data_equivalence(_plain((obs, rewards, dones, infos)), _plain(theirs), exact=True), f"step {step}"
        assert data_equivalence(_plain(adapter.reset_infos), _plain(dummy.reset_infos), exact=True), f"step {step}"
        for info, done in zip(infos, dones):
            if done:
                seen["truncated" if info["TimeLimit.truncated"] else "terminated"] += 1
    assert seen["terminated"] > 0 and seen["truncated"] > 0
    # HER calls compute_reward through env_method, on batches of goals
    goals = obs["desired_goal"]
    [rewards] = adapter.env_method("compute_reward", goals, goals[[0, 0, 2, 3]], [{}] * 4, indices=[0])
    np.testing.assert_array_equal(rewards, [1.0, float(np.array_equal(goals[1], goals[0])), 1.0, 1.0])


@pytest.mark.slow
def test__goal__dqn_with_her_trains_on_the_adapter():
    from stable_baselines3 import DQN, HerReplayBuffer

    env = make_sb3_vec_env("DynDis/GridWorldGoal-v0", n_envs=2, seed=0, grid_shape=(3, 3))
    model = DQN(
        "MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, buffer_size=400, learning_starts=64,
        batch_size=16, seed=0, policy_kwargs={"net_arch": [32]},
    )
    model.learn(150)
    assert model.replay_buffer.size() > 0 and model.num_timesteps >= 150


def test__requires_same_step_autoreset():
    with pytest.raises(ValueError, match=re.escape("`vector_env` must autoreset in the same step")):
        SB3VecEnv(gym.make_vec("DynDis/GridWorld-v0", num_envs=2))


def test__attributes_and_methods_of_the_shared_env():
    env = make_sb3_vec_env("DynDis/GridWorldReach-v0", n_envs=3)
    assert env.get_attr("render_mode") == [None] * 3
    assert [task.target.tolist() for task in env.get_attr("task", indices=[0])] == [[2, 2, 0, 0, 0]]
    assert env.env_is_wrapped(gym.Wrapper) == [False] * 3


def test__split_vector_infos_respects_masks():
    infos = {"a": np.array([1, 2, 3]), "_a": np.array([True, False, True]), "b": {"c": np.array([4, 5, 6]),
             "_c": np.array([False, True, False])}, "_b": np.array([True, True, False])}
    assert split_vector_infos(infos, 3) == [{"a": 1, "b": {}}, {"b": {"c": 5}}, {"a": 3}]


@pytest.mark.slow
def test__ppo_trains_on_the_adapter():
    env = make_sb3_vec_env("DynDis/GridWorldReach-v0", n_envs=4, seed=0, **KWARGS)
    model = PPO("CnnPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0)
    model.learn(64)
    assert model.num_timesteps >= 64
