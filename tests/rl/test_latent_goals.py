"""Goal tasks on latent observations: compute_reward on latent goals, SB3's checker, HER with DQN."""

import re

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import DQN, HerReplayBuffer
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import dyndis_envs  # noqa: F401
from dyndis_learn import load_model
from dyndis_learn.rl import VecLatentObservation
from dyndis_learn.wrappers import LatentGoalReward, LatentObservation

GOAL_ID = "DynDis/GridWorldGoal-v0"
#: The tiny model's env (tests/learn/fixtures.py: GridWorld 5 x 5 at 16 x 16).
KWARGS = {"image_size": 16}


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return load_model(tiny_model_path)


@pytest.fixture(scope="module")
def codes(model):
    """Every state of the tiny model's Goal env and its latent, encoded by the wrapper itself."""
    env = LatentObservation(gym.make(GOAL_ID, **KWARGS), model)
    states = env.unwrapped.factor_space.all_states()
    return states, env.observation(env.unwrapped.frames.batch(states))


def test__latent_compute_reward_is_the_true_success_on_random_pairs_of_states(model, codes):
    env = LatentObservation(gym.make(GOAL_ID, **KWARGS), model)
    states, latents = codes
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(states), (2, 400))
    j[:100] = i[:100]  # a quarter of the pairs are one state twice
    same = (states[i] == states[j]).all(axis=1)
    rewards = env.compute_reward(latents[i], latents[j], [{}] * len(i))
    assert rewards.dtype == np.float64 and rewards.shape == (400,)
    np.testing.assert_array_equal(rewards, same.astype(float))
    np.testing.assert_array_equal(env.compute_terminated(latents[i], latents[j], None), same)
    # a latent stands for the state whose encoding is nearest: encoding noise does not move it
    noisy = latents + np.random.default_rng(1).normal(0, 1e-5, latents.shape).astype(np.float32)
    np.testing.assert_array_equal(env.goal_reward.states_of(noisy), states)


def test__latent_compute_reward_is_vectorised_over_leading_dimensions(model, codes):
    env = LatentObservation(gym.make(GOAL_ID, **KWARGS), model)
    _, latents = codes
    rng = np.random.default_rng(2)
    i, j = rng.integers(0, len(latents), (2, 3, 5))
    j[0] = i[0]
    batched = env.compute_reward(latents[i], latents[j], None)
    assert batched.shape == (3, 5)
    np.testing.assert_array_equal(batched[0], 1.0)
    np.testing.assert_array_equal(batched.ravel(), env.compute_reward(latents[i.ravel()], latents[j.ravel()], None))
    assert env.compute_reward(latents[0], latents[0], {}) == 1.0
    assert env.compute_reward(latents[0], latents[1], {}) == 0.0
    assert env.compute_terminated(latents[0], latents[0], {}) is True
    assert env.compute_reward(latents[:0], latents[:0], []).shape == (0,)
    with pytest.raises(ValueError, match=re.escape("`achieved_goal` must be latent vectors of shape (..., 4)")):
        env.compute_reward(np.zeros(3), latents[0], {})


def test__sb3_checker_passes_on_latent_goals(model):
    env = LatentObservation(gym.make(GOAL_ID, **KWARGS), model)
    check_env(env)  # step's reward (the true success) == compute_reward(latents), single and batched
    obs, _ = env.reset(seed=0, options={"factors": [0, 0, 0, 0, 0], "goal": [0, 1, 0, 0, 0]})
    assert env.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}) == 0.0
    obs, reward, terminated, _, _ = env.step(2)  # east_west + 1 reaches the goal
    assert reward == 1.0 == env.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}) and terminated


def test__threshold_rule_and_the_cap_on_enumerated_states(model, codes):
    _, latents = codes
    capped = LatentObservation(gym.make(GOAL_ID, **KWARGS), model, max_goal_states=24)
    with pytest.raises(ValueError, match=re.escape("the env has 25 states, more than max_goal_states=24")):
        capped.compute_reward(latents[0], latents[0], {})
    distances = np.linalg.norm(latents[:, None] - latents[None], axis=-1)
    threshold = float(np.sort(distances[0])[3])  # the goal and its 3 nearest neighbours count as reached
    near = LatentObservation(gym.make(GOAL_ID, **KWARGS), model, max_goal_states=24, goal_threshold=threshold)
    rewards = near.compute_reward(np.repeat(latents[:1], 25, axis=0), latents, None)
    np.testing.assert_array_equal(rewards, (distances[0] <= threshold).astype(float))
    assert rewards.sum() == 4
    assert near.compute_reward(latents[0], latents[0], {}) == 1.0
    with pytest.raises(ValueError, match=re.escape("`threshold` must be None or a distance >= 0, got -1.0.")):
        LatentObservation(gym.make(GOAL_ID, **KWARGS), model, goal_threshold=-1.0)


def test__nearest_state_rule_needs_a_factor_env(model):
    rule = LatentGoalReward(model, lambda name: getattr(object(), name))
    with pytest.raises(TypeError, match=re.escape("needs a DynDis factor env (its `factor_space` and `frames`)")):
        rule.compute_reward(np.ones(4), np.ones(4), {})


def test__no_goal_methods_without_goals(model):
    env = LatentObservation(gym.make("DynDis/GridWorld-v0", **KWARGS), model)
    with pytest.raises(TypeError, match="is not a goal env"):
        env.compute_reward(np.ones(4), np.ones(4), {})


def test__vec_latent_observation_of_goal_envs(model, codes):
    venv = VecLatentObservation(
        DummyVecEnv([lambda: gym.make(GOAL_ID, max_episode_steps=2, **KWARGS) for _ in range(2)]), model
    )
    states, latents = codes
    venv.seed(0)
    obs = venv.reset()
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    assert all(value.shape == (2, 4) and value.dtype == np.float32 for value in obs.values())
    for _ in range(3):  # an episode ends by step 2 (time limit), sooner where a goal is reached
        _, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
        if dones.any():
            break
    terminal = infos[np.flatnonzero(dones)[0]]["terminal_observation"]
    assert set(terminal) == set(obs) and all(value.shape == (4,) for value in terminal.values())
    i = np.arange(len(states))
    j = np.roll(i, 1)
    j[:5] = i[:5]
    expected = (i == j).astype(float)
    # HER calls env_method("compute_reward", ..., indices=[0]); the sub-envs would compare images
    [rewards] = venv.env_method("compute_reward", latents[i], latents[j], [{}] * len(i), indices=[0])
    np.testing.assert_array_equal(rewards, expected)
    np.testing.assert_array_equal(venv.compute_terminated(latents[i], latents[j], None), expected > 0)
    assert venv.env_method("compute_reward", obs["observation"][0], obs["observation"][0], {}) == [1.0, 1.0]


def _her_dqn(env, steps=300):
    agent = DQN(
        "MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, buffer_size=1000, learning_starts=100,
        batch_size=32, seed=0, policy_kwargs={"net_arch": [32]},
    )
    agent.learn(steps)
    rewards = agent.replay_buffer.sample(256).rewards.cpu().numpy()
    # the relabelled (virtual) transitions got rewards from compute_reward: both values appear
    assert set(np.unique(rewards)) == {0.0, 1.0}
    return agent


@pytest.mark.parametrize("wrapper", ["gym", "vec"])
def test__dqn_with_her_trains_on_latent_goals(model, wrapper):
    if wrapper == "gym":
        env = LatentObservation(gym.make(GOAL_ID, max_episode_steps=20, **KWARGS), model)
    else:
        make = [lambda: gym.make(GOAL_ID, max_episode_steps=20, **KWARGS) for _ in range(2)]
        env = VecLatentObservation(DummyVecEnv(make), model)
    agent = _her_dqn(env)
    assert agent.observation_space["desired_goal"].shape == (4,)


def test__dqn_with_her_trains_on_pixel_goals():
    # SB3's CNN needs images of at least 36 x 36
    agent = _her_dqn(gym.make(GOAL_ID, image_size=36, grid_shape=(3, 3), max_episode_steps=20))
    assert agent.observation_space["desired_goal"].shape == (3, 36, 36)  # SB3 transposes image keys
