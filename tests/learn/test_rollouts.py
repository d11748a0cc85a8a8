import re

import numpy as np
import pytest

from dyndis_learn.rollouts import RolloutCollector


@pytest.fixture(scope="module")
def collector():
    c = RolloutCollector("DynDis/GridWorld-v0", num_episodes=3, episode_steps=7, seed=5, env_kwargs={"image_size": 16})
    yield c
    c.close()


def test__batch_shapes_and_types(collector):
    batch = collector.collect(0)
    assert batch.observations.shape == (3, 8, 16, 16, 3) and batch.observations.dtype == np.uint8
    assert batch.actions.shape == (3, 7) and batch.actions.dtype == np.int64
    assert batch.factors.shape == (3, 8, 5)


def test__same_index_same_batch_other_index_other_batch(collector):
    a, b, c = collector.collect(4), collector.collect(4), collector.collect(5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.actions, c.actions)


def test__frames_follow_the_actions(collector):
    batch = collector.collect(1)
    # GridWorld: action 0/1 moves north_south +1/-1, 2/3 moves east_west; the factors record it.
    deltas = np.diff(batch.factors[..., :2], axis=1) % 5
    expected = np.zeros_like(deltas)
    for move, (k, d) in enumerate([(0, 1), (0, 4), (1, 1), (1, 4)]):
        expected[..., k] = np.where(batch.actions == move, d, expected[..., k])
    np.testing.assert_array_equal(deltas, expected)


def test__episode_must_fit_the_time_limit():
    message = "`env_kwargs['max_episode_steps']`=3 is shorter than the 7 steps per episode; leave it out"
    with pytest.raises(ValueError, match=re.escape(message)):
        RolloutCollector("DynDis/GridWorld-v0", 2, 7, env_kwargs={"max_episode_steps": 3})


def test__policy_is_used():
    c = RolloutCollector(
        "DynDis/GridWorld-v0",
        2,
        5,
        env_kwargs={"image_size": 16},
        policy=lambda obs, rng: np.full(len(obs), 3),
    )
    try:
        assert np.all(c.collect(0).actions == 3)
    finally:
        c.close()
