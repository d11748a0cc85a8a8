"""BallWorld: the paper's geometry (ball radius, spacing, overlap, wrap-around), group law, distinct images."""

import itertools
import pickle

import gymnasium as gym
import numpy as np
import pytest

import dyndis_envs
from dyndis_envs.ballworld import BALL_LEVEL, WALL_LEVEL, BallWorldEnv, BallWorldSource, BallWorldVectorEnv

ALL_STATES = np.array(list(itertools.product(range(5), range(5))), dtype=np.int64)


def _ball(image):
    """Mask of the pixels the ball covers at least half (grey level above the middle)."""
    return image[..., 0] > 128


def test__registered_with_its_tasks():
    assert "DynDis/BallWorld-v0" in dyndis_envs.ENV_IDS
    assert {"DynDis/BallWorldReach-v0", "DynDis/BallWorldGoal-v0"} <= set(dyndis_envs.TASK_IDS)
    env = gym.make("DynDis/BallWorld-v0")
    assert env.observation_space.shape == (84, 84, 1) and env.action_space == gym.spaces.Discrete(4)
    assert env.spec.max_episode_steps == 200


def test__paper_geometry():
    source = BallWorldSource()
    assert source.radius == 15.0
    assert source.spacing == pytest.approx(6.6)
    np.testing.assert_allclose(source.positions, [27.0, 33.6, 40.2, 46.8, 53.4])
    images = source.render(ALL_STATES)
    for state, image in zip(ALL_STATES, images):
        ball = _ball(image)
        rows, cols = np.nonzero(ball)
        # a disc of radius 15: 30 pixels across, area pi r^2 (anti-aliased: the grey levels sum to it)
        assert rows.max() - rows.min() + 1 == 30 and cols.max() - cols.min() + 1 == 30
        inside = image[10:74, 10:74, 0].astype(float)
        assert inside.sum() / BALL_LEVEL == pytest.approx(np.pi * 15**2, rel=0.01)
        # the centre: column 27 + 6.6 x, row 84 - (27 + 6.6 y) (y counts upwards, as the paper's)
        assert cols.mean() + 0.5 == pytest.approx(27 + 6.6 * state[1], abs=0.25)
        assert rows.mean() + 0.5 == pytest.approx(84 - 27 - 6.6 * state[0], abs=0.25)
    # the walls: a 10-pixel border of grey level 1, never touched by the ball (it spans 12 .. 68.4)
    border = np.ones((84, 84), dtype=bool)
    border[10:74, 10:74] = False
    assert np.all(images[:, border, 0] == WALL_LEVEL)
    assert np.all(images[:, 10:74, 10:74][:, [0, -1], :] == 0) and np.all(images[:, 10:74, 10:74][:, :, [0, -1]] == 0)


def test__neighbouring_positions_overlap():
    source = BallWorldSource()
    for y, x in ALL_STATES:
        here = _ball(source.render(np.array([[y, x]]))[0])
        for dy, dx in [(1, 0), (0, 1)]:
            if y + dy < 5 and x + dx < 5:
                there = _ball(source.render(np.array([[y + dy, x + dx]]))[0])
                shared = (here & there).sum() / here.sum()
                # two discs of radius 15 whose centres are 6.6 apart share about 72% of their area
                assert 0.65 < shared < 0.8


def test__wrap_around_at_the_border():
    env = BallWorldEnv(render_mode="rgb_array")
    for action, start, end in [(0, [4, 2], [0, 2]), (1, [0, 2], [4, 2]), (2, [2, 4], [2, 0]), (3, [2, 0], [2, 4])]:
        env.reset(options={"factors": start})
        obs, *_, info = env.step(action)
        assert info["factors"].tolist() == end
        expected, _ = env.reset(options={"factors": end})
        np.testing.assert_array_equal(obs, expected)
        # drawn whole: the ball is the same disc, only moved (never cut by the border)
        inside = obs[10:74, 10:74, 0].astype(float).sum() / BALL_LEVEL
        assert inside == pytest.approx(np.pi * 15**2, rel=0.01)
        assert np.all(obs[10:74, 10:74][[0, -1]] == 0) and np.all(obs[10:74, 10:74][:, [0, -1]] == 0)
    # the actions are the paper's, in its order: up, down, right, left
    centre, _ = env.reset(options={"factors": [2, 2]})
    rows, cols = np.nonzero(_ball(centre))
    for action, (d_row, d_col) in enumerate([(-6.6, 0), (6.6, 0), (0, 6.6), (0, -6.6)]):
        env.reset(options={"factors": [2, 2]})
        moved, *_ = env.step(action)
        r, c = np.nonzero(_ball(moved))
        assert r.mean() - rows.mean() == pytest.approx(d_row, abs=0.3)
        assert c.mean() - cols.mean() == pytest.approx(d_col, abs=0.3)


@pytest.mark.parametrize("action", range(4))
def test__five_steps_return_the_same_image(action):
    env = gym.make("DynDis/BallWorld-v0")
    for state in ALL_STATES:
        first, _ = env.reset(options={"factors": state.tolist()})
        obs = first
        for step in range(5):
            obs, *_ = env.step(action)
            assert np.array_equal(obs, first) == (step == 4)
        assert env.unwrapped.state.tolist() == state.tolist()


def test__distinct_states_render_distinct_images():
    env = BallWorldEnv()
    images = env.render_states(ALL_STATES).reshape(len(ALL_STATES), -1)
    assert len(np.unique(images, axis=0)) == 25
    # not merely distinct: every pair differs by at least a sliver of the ball
    diffs = np.abs(images[:, None].astype(int) - images[None].astype(int)).sum(-1)
    assert diffs[~np.eye(25, dtype=bool)].min() > 50 * 255


def test__channels_size_and_positions():
    rgb = BallWorldEnv(channels=3)
    obs, _ = rgb.reset(seed=0)
    assert obs.shape == (84, 84, 3) and np.array_equal(obs[..., 0], obs[..., 1])
    small = BallWorldSource(image_size=42)
    assert small.radius == 7.5 and small.spacing == pytest.approx(3.3)
    seven = BallWorldEnv(n_positions=7, walls=False)
    assert seven.action_effects[0].cycle_length == 7
    assert seven.source.spacing == pytest.approx(33 / 7)
    assert seven.render_states(np.array([[0, 0]]))[0, 0, 0, 0] == 0
    one_axis = BallWorldEnv({"y": [2]})
    assert one_axis.action_space.n == 2 and one_axis.action_effects[0].factor == "x"


def test__fixed_centre_start_as_in_the_paper():
    env = gym.make("DynDis/BallWorld-v0", start=[2, 2])
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert info["factors"].tolist() == [2, 2]
    vec = BallWorldVectorEnv(3, start=[2, 2])
    _, info = vec.reset(seed=0)
    assert info["factors"].tolist() == [[2, 2]] * 3
    assert pickle.loads(pickle.dumps(env.unwrapped)).task.state == [2, 2]
    with pytest.raises(ValueError, match="start"):
        BallWorldEnv(start=[5, 0])
    with pytest.raises(ValueError, match="at most one of `start` and `task`"):
        BallWorldEnv(start=[2, 2], task=dyndis_envs.PureDynamics())


def test__native_vector_env_matches_single_env():
    vec = gym.make_vec("DynDis/BallWorld-v0", num_envs=4)
    obs, info = vec.reset(seed=3)
    single = BallWorldEnv()
    np.testing.assert_array_equal(obs, single.render_states(info["factors"]))
    obs, _, _, _, info = vec.step(np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(obs, single.render_states(info["factors"]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 8}, "image_size"),
        ({"channels": 2}, "channels"),
        ({"n_positions": 0}, "n_positions"),
        ({"walls": "yes"}, "walls"),
        ({"factors": {"z": 2}}, "z"),
    ],
)
def test__bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BallWorldEnv(**kwargs)
