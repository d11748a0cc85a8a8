import re
import tracemalloc

import gymnasium as gym
import numpy as np
import pytest

from dyndis_envs import gridworld
from dyndis_envs.gridworld import COLOURS, MAX_IMAGE_SIZE, GridWorldEnv, GridWorldSource

ALL = {"size": "all", "colour": "all", "background": "all"}


def test__registered_defaults():
    env = gym.make("DynDis/GridWorld-v0")
    assert env.spec.max_episode_steps == 200
    assert env.action_space == gym.spaces.Discrete(4)
    assert env.observation_space.shape == (64, 64, 3)
    assert env.unwrapped.factor_space.sizes == (5, 5, 1, 1, 1)
    assert env.unwrapped.backend == "procedural"
    assert env.unwrapped.factor_space.values_of([0, 0, 0, 0, 0]) == {
        "north_south": 0, "east_west": 0, "size": 0.9, "colour": "white", "background": "black"
    }


@pytest.mark.parametrize("shape", ["square", "disc"])
@pytest.mark.parametrize(("grid_shape", "image_size", "channels"), [((3, 4), 16, 3), ((2, 3), 32, 1), ((5, 5), 64, 3)])
def test__every_state_renders_a_distinct_image(shape, grid_shape, image_size, channels):
    env = GridWorldEnv(ALL, grid_shape=grid_shape, shape=shape, image_size=image_size, channels=channels)
    frames = env.frames.table.frames
    assert len(frames) == env.factor_space.n_states == grid_shape[0] * grid_shape[1] * 3 * 5 * 5
    assert len(np.unique(frames.reshape(len(frames), -1), axis=0)) == len(frames)


@pytest.mark.parametrize("grid_shape", [(1, 7), (7, 2), (6, 6), (8, 3)])
def test__every_position_is_fully_visible(grid_shape):
    """Each position draws the same amount of ink (anti-aliased coverage): no object is clipped off-image."""
    env = GridWorldEnv({"colour": [1]}, grid_shape=grid_shape, image_size=48)
    ink = env.frames.table.frames[..., 0].sum(axis=(1, 2)) / 255.0  # red object on black, in pixels
    assert ink.min() > 4
    assert np.ptp(ink) < 0.5


def test__object_moves_as_the_factor_says():
    env = GridWorldEnv(grid_shape=(4, 4), image_size=64)
    obs, _ = env.reset(options={"factors": [0, 0, 0, 0, 0]})
    ys, xs = np.nonzero(obs[..., 0])
    assert ys.mean() < 16 and xs.mean() < 16  # top-left cell
    obs, *_ = env.step(0)  # north_south + 1: one cell down
    ys, xs = np.nonzero(obs[..., 0])
    assert 16 < ys.mean() < 32 and xs.mean() < 16
    obs, *_ = env.step(3)  # east_west - 1: wraps to the last column
    ys, xs = np.nonzero(obs[..., 0])
    assert 16 < ys.mean() < 32 and xs.mean() > 48


def test__colours_and_grayscale():
    env = GridWorldEnv({"colour": [1], "background": [3]}, image_size=32)
    obs, _ = env.reset(seed=0)
    assert tuple(obs[0, 0]) == COLOURS["blue"]
    assert (obs.reshape(-1, 3) == COLOURS["red"]).all(axis=1).any()
    grey = GridWorldEnv({"colour": [0], "background": [4]}, image_size=32, channels=1)
    obs, _ = grey.reset(seed=0)
    assert obs.shape == (32, 32, 1) and obs.max() == 255 and obs.min() == 0


def test__matching_colours_draw_an_outline():
    env = GridWorldEnv({"colour": [2], "background": [2]}, image_size=64)
    obs, _ = env.reset(seed=0)
    assert (obs != np.array(COLOURS["green"], dtype=np.uint8)).any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 15}, "`image_size` must be an integer in [16, 1024], got 15."),
        ({"image_size": 64.0}, "`image_size` must be an integer in [16, 1024], got 64.0."),
        # the replay of the report: 10000 was accepted, 5.2 GB of temporaries for one frame
        ({"image_size": 10_000}, "`image_size` must be an integer in [16, 1024], got 10000."),
        ({"image_size": 1025}, "`image_size` must be an integer in [16, 1024], got 1025."),
        ({"grid_shape": (10, 20), "image_size": 32}, "`image_size`=32 is too small for `grid_shape`=(10, 20)"),
        ({"grid_shape": (5,)}, "`grid_shape` must be (rows, columns), got (5,)."),
        ({"grid_shape": (0, 5)}, "`grid_shape` must be an integer >= 1, got 0."),
        ({"channels": 2}, "Invalid `channels`, expected one of (1, 3), got 2."),
        ({"shape": "triangle"}, "Invalid `shape`, expected one of ('square', 'disc'), got 'triangle'."),
        ({"object_sizes": (0.5, 1.5)}, "`object_sizes` must be distinct fractions of a cell in (0, 1]"),
        ({"object_sizes": (0.5, 0.5)}, "`object_sizes` must be distinct fractions of a cell in (0, 1]"),
        ({"render_mode": "ansi"}, "Invalid `render_mode`, expected None or one of ['rgb_array'], got 'ansi'."),
        ({"factors": {"north_south": 1, "east_west": 1}}, "`factors` leaves no active factor"),
        ({"factors": {"colour": 9}}, "Invalid subset for factor 'colour': expected None or 'all', an int in [1, 5]"),
        ({"factors": {"position": 2}}, "Unknown factor name(s) ['position'] in `factors`"),
    ],
)
def test__bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make("DynDis/GridWorld-v0", **kwargs)


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (4, ValueError, "`action` must be in [0, 3], got 4."),
        (-1, ValueError, "`action` must be in [0, 3], got -1."),
        (1.0, TypeError, "`action` must be an integer in [0, 3], got 1.0 of type float."),
        (True, TypeError, "`action` must be an integer in [0, 3], got True of type bool."),
        (np.array([1]), TypeError, "`action` must be an integer in [0, 3]"),
    ],
)
def test__bad_actions(action, error, message):
    env = GridWorldEnv()
    env.reset(seed=0)
    with pytest.raises(error, match=re.escape(message)):
        env.step(action)


def test__numpy_integer_actions_are_accepted():
    env = GridWorldEnv()
    env.reset(seed=0)
    for action in (np.int64(1), np.int32(2), np.array(3)):
        env.step(action)


def test__bad_reset_options():
    env = GridWorldEnv()
    with pytest.raises(ValueError, match=re.escape("Unknown reset option(s) ['factor']; allowed: ['factors'].")):
        env.reset(options={"factor": [0, 0, 0, 0, 0]})
    with pytest.raises(ValueError, match=re.escape("`options['factors']` out of range")):
        env.reset(options={"factors": [5, 0, 0, 0, 0]})
    with pytest.raises(ValueError, match=re.escape("`options['factors']` must hold 5 integer value indices")):
        env.reset(options={"factors": [0, 0]})


def test__step_before_reset():
    with pytest.raises(gym.error.ResetNeeded):
        GridWorldEnv().step(0)


def test__source_renders_fresh_arrays():
    source = GridWorldSource()
    states = np.array([[0, 0, 0, 0, 4], [1, 2, 2, 1, 3]])
    a, b = source.render(states), source.render(states)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == (2, 64, 64, 3) and not np.shares_memory(a, b)


def test__largest_image_size_renders_within_bounded_memory():
    """At the bound one env renders a frame with tens of MB of temporaries, and batches render in passes."""
    source = GridWorldSource(image_size=MAX_IMAGE_SIZE, channels=1)
    states = np.array([[0, 0, 0, 0, 4], [4, 4, 0, 0, 4]])
    tracemalloc.start()
    try:
        images = source.render(states)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert images.shape == (2, 1024, 1024, 1)
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MiB"


def test__batches_rendered_in_passes_equal_one_pass(monkeypatch):
    source = GridWorldSource(grid_shape=(3, 4), image_size=16)
    states = np.stack(np.meshgrid(range(3), range(4), range(3), range(5), range(5), indexing="ij"), -1).reshape(-1, 5)
    whole = source.render(states)
    monkeypatch.setattr(gridworld, "RENDER_PIXELS", 16 * 16 * 7)  # 7 states per pass, a short last pass
    np.testing.assert_array_equal(source.render(states), whole)
