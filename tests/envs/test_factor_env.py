"""FactorEnv's constructor: where the chosen values come from (factors, factor_space or frames) and the task."""

import re

import gymnasium as gym
import numpy as np
import pytest

from dyndis_envs.factor_env import FactorEnv
from dyndis_envs.factors import FactorSpace
from dyndis_envs.gridworld import GridWorldSource
from dyndis_envs.tasks import ReachTask

SOURCE = GridWorldSource(grid_shape=(3, 4), image_size=16)


def test__factor_space__is_used_as_given():
    space = FactorSpace(SOURCE.factors, {"size": 1, "colour": 1, "background": [4]})
    env = FactorEnv(SOURCE, factor_space=space, task=ReachTask())
    assert env.factor_space is space and env.action_effects is space.action_effects
    assert env.task.target.tolist() == [1, 2, 0, 0, 0]


def test__frames__share_the_chosen_values_and_images():
    plain = FactorEnv(SOURCE, {"size": 1, "colour": 1, "background": 1})
    env = FactorEnv(SOURCE, frames=plain.frames)
    assert env.frames is plain.frames and env.factor_space is plain.factor_space
    obs, _ = env.reset(seed=0, options={"factors": [2, 3, 0, 0, 0]})
    np.testing.assert_array_equal(obs, plain.reset(options={"factors": [2, 3, 0, 0, 0]})[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"factors": {"size": 1}, "factor_space": FactorSpace(SOURCE.factors)},
            "Pass at most one of `factors`, `factor_space` and `frames`, got ['factors', 'factor_space'].",
        ),
        (
            {"factor_space": FactorSpace(GridWorldSource(grid_shape=(3, 3)).factors)},
            "`factor_space` must be built over `source.factors` (the same factors and values).",
        ),
        (
            {"frames": FactorEnv(GridWorldSource(grid_shape=(3, 4), image_size=16)).frames},
            "`frames` must come from an environment over the same `source`.",
        ),
    ],
)
def test__bad_sources_of_chosen_values(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        FactorEnv(SOURCE, **kwargs)


@pytest.mark.parametrize("world", ["DynDis/GridWorld-v0", "DynDis/Shapes3D-v0"])
def test__render_states_gives_the_images_a_reset_into_those_states_gives(world):
    kwargs = {"factors": {"object_hue": [0], "scale": [0], "shape": [0]}} if "Shapes" in world else {}
    env = gym.make(world, **kwargs).unwrapped
    states = env.factor_space.sample_states(6, np.random.default_rng(0))
    images = env.render_states(states)
    assert images.shape == (6, *env.observation_space.shape) and images.dtype == np.uint8
    for state, image in zip(states, images, strict=True):
        np.testing.assert_array_equal(env.reset(options={"factors": state})[0], image)
    assert env.render_states(states.reshape(2, 3, -1)).shape == (2, 3, *env.observation_space.shape)
    vector = gym.make_vec(world, num_envs=2, **kwargs)
    np.testing.assert_array_equal(vector.render_states(states), images)
    with pytest.raises(ValueError, match=re.escape("`states` out of range")):
        env.render_states(np.full((1, env.factor_space.n_factors), 99))
