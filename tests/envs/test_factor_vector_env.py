"""The native vector envs against Gymnasium's SyncVectorEnv over single envs, and their own contracts."""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode

from tests.envs.fixtures import FAST_KWARGS


def _pair(env_id, num_envs, mode, max_episode_steps=5):
    kwargs = {**FAST_KWARGS[env_id], "max_episode_steps": max_episode_steps}
    native = gym.make_vec(env_id, num_envs=num_envs, autoreset_mode=mode, **kwargs)
    sync = gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **kwargs
    )
    return native, sync


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test__native_matches_sync_vector_env(env_id, mode):
    """Sub-env i reproduces a single env seeded with seed + i, through autoresets, in both modes."""
    native, sync = _pair(env_id, 4, mode)
    assert native.metadata["autoreset_mode"] == mode
    assert data_equivalence(native.reset(seed=7), sync.reset(seed=7), exact=True)
    rng = np.random.default_rng(0)
    for step in range(23):
        actions = rng.integers(0, native.single_action_space.n, 4)
        assert data_equivalence(native.step(actions), sync.step(actions), exact=True), f"step {step}"
    # a second reset without a seed continues every sub-env's generator, as single envs do
    assert data_equivalence(native.reset(), sync.reset(), exact=True)


def test__reset_mask_resets_only_the_chosen_envs():
    native, sync = _pair("DynDis/GridWorld-v0", 3, AutoresetMode.NEXT_STEP, max_episode_steps=100)
    native.reset(seed=1)
    sync.reset(seed=1)
    actions = np.array([0, 1, 2])
    native.step(actions)
    sync.step(actions)
    mask = np.array([True, False, True])
    before = native.unwrapped.states
    obs, info = native.reset(options={"reset_mask": mask})
    assert data_equivalence((obs, info), sync.reset(options={"reset_mask": mask}), exact=True)
    np.testing.assert_array_equal(native.unwrapped.states[1], before[1])
    np.testing.assert_array_equal(info["_factors"], mask)


def test__reset_to_given_factors_per_env():
    vec = gym.make_vec("DynDis/GridWorld-v0", num_envs=2)
    states = np.array([[0, 1, 0, 0, 0], [4, 3, 0, 0, 0]])
    obs, info = vec.reset(seed=0, options={"factors": states})
    np.testing.assert_array_equal(info["factors"], states)
    single = gym.make("DynDis/GridWorld-v0")
    np.testing.assert_array_equal(obs[1], single.reset(options={"factors": states[1]})[0])


def test__truncates_after_max_episode_steps_and_autoresets_next_step():
    vec = gym.make_vec("DynDis/GridWorld-v0", num_envs=2, max_episode_steps=3)
    vec.reset(seed=0)
    flags = [vec.step(np.zeros(2, dtype=np.int64))[3].tolist() for _ in range(4)]
    assert flags == [[False, False], [False, False], [True, True], [False, False]]


def test__disabled_autoreset_requires_an_explicit_reset():
    vec = gym.make_vec("DynDis/GridWorld-v0", num_envs=2, max_episode_steps=1, autoreset_mode="Disabled")
    vec.reset(seed=0)
    vec.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(gym.error.ResetNeeded, match=re.escape("Sub-environments [0, 1] finished")):
        vec.step(np.zeros(2, dtype=np.int64))
    vec.reset(options={"reset_mask": np.array([True, True])})
    vec.step(np.zeros(2, dtype=np.int64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "`num_envs` must be an integer >= 1, got 0."),
        ({"max_episode_steps": 0}, "`max_episode_steps` must be an integer >= 1 or None, got 0."),
        (
            {"autoreset_mode": "sometimes"},
            "Invalid `autoreset_mode`, expected one of ['NextStep', 'SameStep', 'Disabled']",
        ),
        ({"factors": {"colour": 0}}, "Invalid subset for factor 'colour'"),
    ],
)
def test__bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make_vec("DynDis/GridWorld-v0", **kwargs)


def test__bad_step_and_reset_arguments():
    vec = gym.make_vec("DynDis/GridWorld-v0", num_envs=2)
    with pytest.raises(gym.error.ResetNeeded):
        vec.step(np.zeros(2, dtype=np.int64))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("`actions` must be an integer array of shape (2,)")):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=re.escape("`actions` must be an integer array of shape (2,)")):
        vec.step(np.zeros(2))
    with pytest.raises(ValueError, match=re.escape("`actions` must be in [0, 3]")):
        vec.step(np.array([0, 4]))
    with pytest.raises(ValueError, match=re.escape("`seed` must be None, an int, or a list of 2 ints or Nones")):
        vec.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match=re.escape("`options['reset_mask']` must be a bool numpy array of shape (2,)")):
        vec.reset(options={"reset_mask": [True, False]})
    with pytest.raises(ValueError, match=re.escape("`options['reset_mask']` must select at least one")):
        vec.reset(options={"reset_mask": np.zeros(2, dtype=bool)})
    with pytest.raises(ValueError, match=re.escape("Unknown reset option(s) ['mask']")):
        vec.reset(options={"mask": np.ones(2, dtype=bool)})


def test__options_are_not_mutated():
    vec = gym.make_vec("DynDis/GridWorld-v0", num_envs=2)
    options = {"reset_mask": np.array([True, True]), "factors": [1, 1, 0, 0, 0]}
    vec.reset(seed=0, options=options)
    assert set(options) == {"reset_mask", "factors"}


def test__render_gives_every_sub_env_frame():
    vec = gym.make_vec("DynDis/GridWorld-v0", num_envs=3, render_mode="rgb_array")
    obs, _ = vec.reset(seed=0)
    frames = vec.render()
    assert len(frames) == 3
    np.testing.assert_array_equal(np.stack(frames), obs)
