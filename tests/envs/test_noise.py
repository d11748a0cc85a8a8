"""observation_noise: the documented draw, its range and clipping, seeding, clean renders, vector == single."""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from dyndis_envs.gridworld import GridWorldEnv
from dyndis_envs.task_envs import GoalMethods
from tests.envs.fixtures import ALL_IDS, fast_kwargs

# a Reach id is its plain id's class with another task, so the plain and Goal ids cover every observation path
PLAIN_AND_GOAL_IDS = [i for i in ALL_IDS if "Reach" not in i]

# one grey channel, a red object on green: luma 76 and 150, so noise of +-4 is never clipped
MID_GREY = {"channels": 1, "factors": {"colour": [1], "background": [2]}}


def _rollout(env, seed, n_steps=12):
    out = [env.reset(seed=seed)]
    for action in np.random.default_rng(seed).integers(0, env.action_space.n, n_steps):
        out.append(env.step(action))
    return out


def test__an_observation_is_the_clean_image_plus_one_documented_draw():
    """reset(seed=s): the start, then rng.integers(-k, k + 1, (H, W, C), int16) from np_random, clipped to 0..255."""
    env = GridWorldEnv(observation_noise=4)
    obs, info = env.reset(seed=11)
    rng = seeding.np_random(11)[0]
    assert env.task.sample_start(env.factor_space, rng) == info["factors"].tolist()
    noise = rng.integers(-4, 5, size=obs.shape, dtype=np.int16)
    clean = env.render_states(info["factors"])
    np.testing.assert_array_equal(obs, np.clip(clean + noise, 0, 255).astype(np.uint8))
    obs, *_ = env.step(0)
    noise = rng.integers(-4, 5, size=obs.shape, dtype=np.int16)
    np.testing.assert_array_equal(obs, np.clip(env.render_states(env.state) + noise, 0, 255))


def test__noise_is_uniform_on_minus_k_to_k_per_pixel_and_channel():
    env = GridWorldEnv(observation_noise=4, **MID_GREY)
    obs, info = env.reset(seed=0)
    diffs = [obs.astype(int) - env.render_states(info["factors"])]
    for _ in range(30):
        obs, *_ = env.step(0)
        diffs.append(obs.astype(int) - env.render_states(env.state))
    diffs = np.concatenate([d.ravel() for d in diffs])
    values, counts = np.unique(diffs, return_counts=True)
    assert values.tolist() == list(range(-4, 5))
    np.testing.assert_allclose(counts / counts.sum(), 1 / 9, atol=0.01)  # 127k draws: 1 / 9 within 0.01


def test__noise_is_clipped_to_the_intensity_scale():
    """Default GridWorld pixels are 0 (background) or 255 (object): the noise only lightens or darkens them."""
    env = GridWorldEnv(observation_noise=255)
    obs, info = env.reset(seed=3)
    clean = env.render_states(info["factors"])
    assert obs.dtype == np.uint8
    assert np.unique(obs[clean == 0]).tolist() == list(range(256))  # clipped from [-255, 255] into 0..255
    share_of_zeros = np.mean(obs[clean == 0] == 0)
    assert abs(share_of_zeros - 256 / 511) < 0.02  # every draw <= 0 becomes 0
    assert np.mean(obs[clean == 255] == 255) > 0.45


@pytest.mark.parametrize("any_id", PLAIN_AND_GOAL_IDS)
def test__checkers_pass_with_noise(any_id):
    env = gym.make(any_id, observation_noise=3, **fast_kwargs(any_id))
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(GoalMethods(env) if "Goal" in any_id else env)


@pytest.mark.parametrize("any_id", ALL_IDS)
def test__same_seed_same_noisy_rollout_and_clean_renders(any_id):
    kwargs = {**fast_kwargs(any_id), "observation_noise": 5, "render_mode": "rgb_array"}
    a, b = gym.make(any_id, **kwargs), gym.make(any_id, **kwargs)
    rollout = _rollout(a, 3)
    assert data_equivalence(rollout, _rollout(b, 3), exact=True)
    assert not data_equivalence(_rollout(a, 3)[0], _rollout(b, 4)[0], exact=True)
    env = a.unwrapped
    obs, info = rollout[-1][0], rollout[-1][-1]
    image = obs["observation"] if isinstance(obs, dict) else obs
    clean = env.render_states(info["factors"])
    np.testing.assert_array_equal(env.render(), clean)  # render() and render_states() stay clean
    assert not np.array_equal(image, clean)
    if isinstance(obs, dict):  # goals are clean: the reward is exact under noise
        np.testing.assert_array_equal(obs["achieved_goal"], clean)
        np.testing.assert_array_equal(obs["desired_goal"], env.render_states(info["goal_factors"]))


def test__zero_noise_draws_nothing_and_changes_nothing():
    noisy_off, plain = GridWorldEnv(observation_noise=0), GridWorldEnv()
    assert data_equivalence(_rollout(noisy_off, 5, 30), _rollout(plain, 5, 30), exact=True)
    obs, info = noisy_off.reset(seed=5)
    np.testing.assert_array_equal(obs, noisy_off.render_states(info["factors"]))
    state = noisy_off.np_random.bit_generator.state
    noisy_off.step(0)
    assert noisy_off.np_random.bit_generator.state == state


def test__goal_env_draws_start_then_goal_then_noise():
    """With noise, the start and goal of a seeded reset are those of the noise-free env."""
    noisy = gym.make("DynDis/GridWorldGoal-v0", observation_noise=2)
    clean = gym.make("DynDis/GridWorldGoal-v0")
    for seed in range(5):
        (_, info_noisy), (_, info_clean) = noisy.reset(seed=seed), clean.reset(seed=seed)
        assert data_equivalence(info_noisy, info_clean, exact=True)


@pytest.mark.parametrize("value", [-1, 256, 2.5, True, "4", None])
def test__bad_observation_noise(value):
    message = f"`observation_noise` must be an integer in [0, 255], got {value!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        GridWorldEnv(observation_noise=value)
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make_vec("DynDis/GridWorldGoal-v0", num_envs=2, observation_noise=value)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("any_id", PLAIN_AND_GOAL_IDS)
def test__native_vector_env_matches_sync_with_noise(any_id, mode):
    """Sub-env i draws its noise from its own generator, in a single env's order, through autoresets."""
    kwargs = {**fast_kwargs(any_id), "observation_noise": 3, "max_episode_steps": 4}
    native = gym.make_vec(any_id, num_envs=3, autoreset_mode=mode, **kwargs)
    sync = gym.make_vec(
        any_id, num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **kwargs
    )
    assert data_equivalence(native.reset(seed=7), sync.reset(seed=7), exact=True)
    rng = np.random.default_rng(0)
    for step in range(9):
        actions = rng.integers(0, native.single_action_space.n, 3)
        assert data_equivalence(native.step(actions), sync.step(actions), exact=True), f"step {step}"
    mask = np.array([True, False, True])  # the sub-env left alone keeps its last (noisy) observation
    assert data_equivalence(
        native.reset(options={"reset_mask": mask}), sync.reset(options={"reset_mask": mask}), exact=True
    )
