"""Contracts every registered DynDis environment keeps (Gymnasium's and SB3's checkers, seeding, group law)."""

import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from dyndis_envs import ActionEffect
from tests.envs.fixtures import ALL_IDS, FAST_KWARGS, fast_kwargs


def _make(env_id, **kwargs):
    return gym.make(env_id, **{**FAST_KWARGS[env_id], **kwargs})


def _rollout(env, seed, n_steps=40):
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for action in np.random.default_rng(seed).integers(0, env.action_space.n, n_steps):
        out.append(env.step(action))
    return out


def test__every_id_has_fast_test_kwargs(env_id):
    assert env_id in FAST_KWARGS


def test__gymnasium_check_env(env_id):
    check_env(_make(env_id).unwrapped, skip_render_check=False)


def test__sb3_check_env(env_id):
    sb3_check_env(_make(env_id), warn=True)


def test__spaces_and_types(env_id):
    env = _make(env_id)
    obs, info = env.reset(seed=1)
    assert env.observation_space.dtype == np.uint8 and env.observation_space.contains(obs)
    assert info["factors"].dtype == np.int64
    assert info["factors"].shape == (env.unwrapped.factor_space.n_factors,)
    obs2, reward, terminated, truncated, _ = env.step(0)
    assert type(reward) is float and reward == 0.0
    assert type(terminated) is bool and type(truncated) is bool and not terminated
    assert obs2 is not obs and not np.shares_memory(obs2, obs)
    assert env.spec.max_episode_steps is not None


def test__same_seed_same_rollout(env_id):
    a, b = _make(env_id), _make(env_id)
    assert data_equivalence(_rollout(a, 3), _rollout(b, 3), exact=True)
    assert not data_equivalence(_rollout(a, 3)[0], _rollout(b, 4)[0], exact=True)


def test__pickle_round_trip(env_id):
    env = _make(env_id)
    env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    assert data_equivalence(env.step(1), clone.step(1), exact=True)


def test__group_law_for_every_action(env_id):
    env = _make(env_id).unwrapped
    start, _ = env.reset(seed=0)
    for action, effect in enumerate(env.action_effects):
        obs = start
        for _ in range(effect.cycle_length):
            obs, *_ = env.step(action)
        np.testing.assert_array_equal(obs, start, err_msg=f"{effect.cycle_length} steps of action {action}")
        env.step(action)
        obs, *_ = env.step(effect.inverse)
        np.testing.assert_array_equal(obs, start, err_msg=f"action {action} then {effect.inverse}")


@pytest.mark.parametrize("any_id", ALL_IDS)
def test__action_effects_say_what_every_action_does(any_id):
    """Each action moves its factor by its direction (cyclically) and nothing else; its inverse undoes it."""
    env = gym.make(any_id, **fast_kwargs(any_id))
    effects = env.unwrapped.action_effects
    assert len(effects) == env.action_space.n
    assert all(isinstance(effect, ActionEffect) for effect in effects)
    env.reset(seed=0)
    _, info = env.reset(options={"factors": np.asarray(env.unwrapped.factor_space.sizes) - 1})  # wraps on +1
    for action, effect in enumerate(effects):
        before = info["factors"].copy()
        *_, info = env.step(action)
        expected = before.copy()
        expected[effect.factor_index] = (before[effect.factor_index] + effect.direction) % effect.cycle_length
        np.testing.assert_array_equal(info["factors"], expected, err_msg=f"{any_id} action {action}: {effect}")
        *_, info = env.step(effect.inverse)
        np.testing.assert_array_equal(info["factors"], before, err_msg=f"{any_id} inverse of action {action}")
        assert effects[effect.inverse].inverse == action and effects[effect.inverse].direction == -effect.direction
        assert effect.factor == env.unwrapped.factor_space.names[effect.factor_index]


@pytest.mark.parametrize("any_id", [i for i in ALL_IDS if gym.spec(i).vector_entry_point is not None])
def test__native_vector_env_has_the_single_env_action_effects(any_id):
    vec = gym.make_vec(any_id, num_envs=2, **fast_kwargs(any_id))
    assert vec.action_effects == gym.make(any_id, **fast_kwargs(any_id)).unwrapped.action_effects


def test__reset_to_given_factors(env_id):
    env = _make(env_id)
    space = env.unwrapped.factor_space
    target = np.asarray(space.sizes) - 1
    obs, info = env.reset(seed=0, options={"factors": target})
    np.testing.assert_array_equal(info["factors"], target)
    expected = env.unwrapped.frames.batch(target[None])[0]
    np.testing.assert_array_equal(obs, expected)


def test__render_returns_current_frame(env_id):
    env = _make(env_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=2)
    np.testing.assert_array_equal(env.render(), obs)
    obs, *_ = env.step(1)
    np.testing.assert_array_equal(env.render(), obs)


def test__starts_are_uniform_over_chosen_values(env_id):
    env = _make(env_id).unwrapped
    env.reset(seed=0)
    starts = np.array([env.reset()[1]["factors"] for _ in range(400)])
    for k, size in enumerate(env.factor_space.sizes):
        seen = np.unique(starts[:, k])
        if size <= 20:
            assert seen.tolist() == list(range(size))
        else:  # e.g. 183 Cars3D objects: 400 draws cover most of them
            assert len(seen) > size // 2


@pytest.mark.slow
def test__async_vector_env_from_module_id_form(env_id):
    vec = gym.make_vec(
        f"dyndis_envs:{env_id}", num_envs=2, vectorization_mode="async",
        vector_kwargs={"context": "spawn"}, **FAST_KWARGS[env_id],
    )
    try:
        obs, _ = vec.reset(seed=0)
        single = _make(env_id)
        np.testing.assert_array_equal(obs[1], single.reset(seed=1)[0])
        obs, *_ = vec.step(np.zeros(2, dtype=np.int64))
        np.testing.assert_array_equal(obs[1], single.step(0)[0])
    finally:
        vec.close()


def test__module_id_form_works_without_prior_import():
    code = (
        "import gymnasium as gym; env = gym.make('dyndis_envs:DynDis/GridWorld-v0'); "
        "print(env.reset(seed=0)[0].shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(64, 64, 3)"
