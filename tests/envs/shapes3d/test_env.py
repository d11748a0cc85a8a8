"""Shapes3DEnv: registration, the factors of 3D Shapes, subsets, group law, vector env, arguments."""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode

import dyndis_envs
from dyndis_envs.shapes3d import (
    FACTOR_NAMES,
    HUES,
    ORIENTATIONS,
    SCALES,
    SHAPE_NAMES,
    SHAPES,
    Shapes3DEnv,
    Shapes3DSource,
    Shapes3DVectorEnv,
)


def test__registered_id():
    assert "DynDis/Shapes3D-v0" in dyndis_envs.ENV_IDS
    spec = gym.spec("DynDis/Shapes3D-v0")
    assert spec.entry_point == "dyndis_envs.shapes3d:Shapes3DEnv"
    assert spec.vector_entry_point == "dyndis_envs.shapes3d:Shapes3DVectorEnv"
    assert spec.max_episode_steps == 200


def test__factors_and_values_are_those_of_3d_shapes():
    assert FACTOR_NAMES == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert HUES == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    np.testing.assert_array_equal(SCALES, np.linspace(0.75, 1.25, 8))
    assert SHAPES == (0.0, 1.0, 2.0, 3.0) and SHAPE_NAMES == ("cube", "cylinder", "sphere", "capsule")
    np.testing.assert_array_equal(ORIENTATIONS, np.linspace(-30, 30, 15))
    env = gym.make("DynDis/Shapes3D-v0")
    space = env.unwrapped.factor_space
    assert space.names == FACTOR_NAMES and space.sizes == (10, 10, 10, 8, 4, 15)
    assert env.action_space == gym.spaces.Discrete(12)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.unwrapped.backend == "procedural"
    assert env.unwrapped.frames.table is None  # 480,000 states: rendered on demand, not prerendered
    assert space.action_meanings()[8:] == ["shape+1", "shape-1", "orientation+1", "orientation-1"]


def test__info_factors_are_indices_within_the_chosen_values():
    env = Shapes3DEnv({"object_hue": [5, 2], "shape": [3], "orientation": 4}, image_size=16)
    assert env.factor_space.sizes == (10, 10, 2, 8, 1, 4)
    assert env.action_space.n == 10  # shape has one value: not active
    obs, info = env.reset(options={"factors": [1, 2, 0, 3, 0, 3]})
    np.testing.assert_array_equal(info["factors"], [1, 2, 0, 3, 0, 3])
    assert env.factor_space.values_of(info["factors"]) == {
        "floor_hue": 0.1, "wall_hue": 0.2, "object_hue": 0.5, "scale": SCALES[3], "shape": 3.0,
        "orientation": ORIENTATIONS[3],
    }
    np.testing.assert_array_equal(obs, Shapes3DSource(16).render(np.array([[1, 2, 5, 3, 3, 3]]))[0])
    obs, _, _, _, info = env.step(4)  # object_hue + 1: index 1 of the chosen [5, 2], hue 0.2
    np.testing.assert_array_equal(info["factors"], [1, 2, 1, 3, 0, 3])
    np.testing.assert_array_equal(obs, Shapes3DSource(16).render(np.array([[1, 2, 2, 3, 3, 3]]))[0])


def test__group_law_for_every_factor_over_all_values():
    env = gym.make("DynDis/Shapes3D-v0", image_size=16, max_table_bytes=0).unwrapped
    start, _ = env.reset(seed=7)
    for k, size in enumerate(env.factor_space.sizes):
        for action in (2 * k, 2 * k + 1):
            frames = [env.step(action)[0] for _ in range(size)]
            np.testing.assert_array_equal(frames[-1], start, err_msg=f"{size} steps of action {action}")
            # every intermediate state is another image (no value renders like its neighbour)
            assert all(not np.array_equal(f, start) for f in frames[:-1]), f"action {action}"


def test__table_and_renderer_give_the_same_images():
    factors = {"floor_hue": [4, 8], "wall_hue": 3, "scale": [7, 0], "orientation": [14, 0]}
    with_table = Shapes3DEnv(factors, image_size=24)
    without = Shapes3DEnv(factors, image_size=24, max_table_bytes=0)
    assert with_table.frames.table is not None and without.frames.table is None
    states = with_table.factor_space.all_states()
    np.testing.assert_array_equal(with_table.frames.batch(states), without.frames.batch(states))


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test__native_vector_env_matches_sync_vector_env_over_all_factors(mode):
    kwargs = {"image_size": 16, "max_table_bytes": 0, "max_episode_steps": 6}
    native = gym.make_vec("DynDis/Shapes3D-v0", num_envs=4, autoreset_mode=mode, **kwargs)
    sync = gym.make_vec(
        "DynDis/Shapes3D-v0", num_envs=4, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **kwargs
    )
    assert isinstance(native.unwrapped, Shapes3DVectorEnv)
    assert data_equivalence(native.reset(seed=11), sync.reset(seed=11), exact=True)
    for actions in np.random.default_rng(2).integers(0, 12, (15, 4)):
        assert data_equivalence(native.step(actions), sync.step(actions), exact=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"image_size": 8}, ValueError, "`image_size` must be an integer in [16, 256], got 8."),
        ({"image_size": 512}, ValueError, "`image_size` must be an integer in [16, 256], got 512."),
        ({"image_size": 64.0}, ValueError, "`image_size` must be an integer in [16, 256], got 64.0."),
        ({"image_size": True}, ValueError, "`image_size` must be an integer in [16, 256], got True."),
        ({"backend": "opengl"}, ValueError, "Invalid `backend`, expected one of ('procedural', 'file', 'auto'), got"),
        ({"factors": {"colour": 2}}, ValueError, "Unknown factor name(s) ['colour'] in `factors`; this environment"),
        ({"factors": {"scale": [8]}}, ValueError, "Invalid subset for factor 'scale': expected None or 'all', an int"),
        ({"factors": {"shape": 0}}, ValueError, "Invalid subset for factor 'shape'"),
        (
            {"factors": dict.fromkeys(FACTOR_NAMES, 1)},
            ValueError,
            "`factors` leaves no active factor: at least one factor needs two or more values",
        ),
        ({"render_mode": "human"}, ValueError, "Invalid `render_mode`, expected None or one of ['rgb_array']"),
    ],
)
def test__bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Shapes3DEnv(**kwargs)
