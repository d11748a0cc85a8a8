import re

import numpy as np
import pytest

from dyndis_envs.factors import Factor, FactorSpace

FACTORS = [Factor("x", tuple(range(5))), Factor("colour", ("red", "green", "blue")), Factor("fixed", ("only",))]


def test__subsets__int_list_all_and_default():
    space = FactorSpace(FACTORS, {"x": 3, "colour": [2, 0]})
    assert space.sizes == (3, 2, 1)
    assert [s.tolist() for s in space.selected] == [[0, 1, 2], [2, 0], [0]]
    assert FactorSpace(FACTORS, {"x": "all"}).sizes == (5, 3, 1)
    assert FactorSpace(FACTORS).sizes == (5, 3, 1)
    assert space.values_of([1, 0, 0]) == {"x": 1, "colour": "blue", "fixed": "only"}


def test__actions__two_per_active_factor():
    space = FactorSpace(FACTORS)
    assert space.active == (0, 1)
    assert space.n_actions == 4
    assert space.action_meanings() == ["x+1", "x-1", "colour+1", "colour-1"]


@pytest.mark.parametrize(
    ("subsets", "message"),
    [
        ({"y": 2}, "Unknown factor name(s) ['y'] in `factors`; this environment has ['x', 'colour', 'fixed']."),
        ({"x": 0}, "Invalid subset for factor 'x': expected None or 'all', an int in [1, 5]"),
        ({"x": 6}, "Invalid subset for factor 'x'"),
        ({"x": []}, "Invalid subset for factor 'x'"),
        ({"x": [0, 5]}, "Invalid subset for factor 'x'"),
        ({"x": [-1]}, "Invalid subset for factor 'x'"),
        ({"x": [1, 1]}, "Invalid subset for factor 'x'"),
        ({"x": "some"}, "Invalid subset for factor 'x'"),
        ({"x": [0.5]}, "Invalid subset for factor 'x'"),
    ],
)
def test__subsets__bad_input_names_the_factor(subsets, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        FactorSpace(FACTORS, subsets)


def test__subsets__bool_is_rejected():
    with pytest.raises(TypeError, match=re.escape("Invalid subset for factor 'x'")):
        FactorSpace(FACTORS, {"x": True})


def test__step__cyclic_group_law():
    space = FactorSpace(FACTORS)
    state = [4, 2, 0]
    assert space.step_one(state, 0) == [0, 2, 0]  # wrap-around
    assert space.step_one(state, 3) == [4, 1, 0]
    for action, n in ((0, 5), (1, 5), (2, 3), (3, 3)):
        s = list(state)
        for _ in range(n):
            s = space.step_one(s, action)
        assert s == state


def test__step__batch_matches_single():
    space = FactorSpace(FACTORS, {"x": [4, 1, 3]})
    rng = np.random.default_rng(0)
    states = rng.integers(0, space.sizes, size=(50, 3))
    actions = rng.integers(0, space.n_actions, size=50)
    batch = space.step(states, actions)
    assert batch.tolist() == [space.step_one(list(s), int(a)) for s, a in zip(states, actions)]


def test__flat_index__is_row_major_order_of_all_states():
    space = FactorSpace(FACTORS, {"x": 4})
    states = space.all_states()
    assert states.shape == (12, 3)
    np.testing.assert_array_equal(space.flat_index(states), np.arange(12))
    np.testing.assert_array_equal(states, np.stack(np.unravel_index(np.arange(12), space.sizes), axis=1))


def test__to_value_indices__maps_through_the_subset():
    space = FactorSpace(FACTORS, {"x": [4, 2], "colour": [1]})
    np.testing.assert_array_equal(space.to_value_indices(np.array([[0, 0, 0], [1, 0, 0]])), [[4, 1, 0], [2, 1, 0]])


def test__check_states__errors():
    space = FactorSpace(FACTORS)
    with pytest.raises(ValueError, match=re.escape("`factors` must hold 3 integer value indices")):
        space.check_states([1, 2])
    with pytest.raises(ValueError, match=re.escape("`factors` out of range")):
        space.check_states([5, 0, 0])
    with pytest.raises(ValueError, match=re.escape("`factors` must hold 3 integer value indices")):
        space.check_states([0.0, 1.0, 0.0])


def test__factor__needs_values():
    with pytest.raises(ValueError, match=re.escape("Factor 'x' needs at least one value")):
        Factor("x", ())


def test__sample_states_is_uniform_seeded_and_in_range():
    space = FactorSpace([Factor("x", (0, 1, 2)), Factor("y", tuple(range(5)))], {"y": [4, 0, 2]})
    a = space.sample_states(3000, np.random.default_rng(5))
    assert a.shape == (3000, 2) and a.dtype == np.int64
    np.testing.assert_array_equal(a, space.sample_states(3000, np.random.default_rng(5)))
    counts = np.bincount(space.flat_index(a), minlength=space.n_states)
    assert counts.min() > 3000 / 9 * 0.8  # every one of the 9 states, about equally often
    assert space.sample_states(0, np.random.default_rng(0)).shape == (0, 2)
    with pytest.raises(ValueError, match=re.escape("`n` must be an integer >= 0, got -1.")):
        space.sample_states(-1, np.random.default_rng(0))
