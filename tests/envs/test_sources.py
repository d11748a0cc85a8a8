"""Frame tables and lookups: prerendered or rendered on demand, the same fresh images either way."""

import numpy as np

from dyndis_envs.factors import FactorSpace
from dyndis_envs.gridworld import GridWorldSource
from dyndis_envs.sources import FrameLookup

SOURCE = GridWorldSource(grid_shape=(3, 4), image_size=16)
SPACE = FactorSpace(SOURCE.factors, {"size": [1, 2], "colour": [0], "background": [4, 2]})


def test__table_and_on_demand_rendering_agree():
    table = FrameLookup(SOURCE, SPACE, max_table_bytes=2**30)
    direct = FrameLookup(SOURCE, SPACE, max_table_bytes=0)
    assert table.table is not None and table.table.frames.shape == (SPACE.n_states, 16, 16, 3)
    assert direct.table is None
    states = SPACE.all_states()
    np.testing.assert_array_equal(table.batch(states), direct.batch(states))
    np.testing.assert_array_equal(table.batch(states), SOURCE.render(SPACE.to_value_indices(states)))
    for state in states[[0, 7, -1]].tolist():
        np.testing.assert_array_equal(table.one(state), direct.one(state))


def test__images_are_fresh_arrays():
    lookup = FrameLookup(SOURCE, SPACE, max_table_bytes=2**30)
    first = lookup.one([0, 0, 0, 0, 0])
    first[:] = 7
    assert not np.shares_memory(first, lookup.table.frames)
    expected = SOURCE.render(SPACE.to_value_indices(np.zeros((1, 5), dtype=np.int64)))[0]
    np.testing.assert_array_equal(lookup.one([0, 0, 0, 0, 0]), expected)
    batch = lookup.batch(np.zeros((2, 5), dtype=np.int64))
    assert not np.shares_memory(batch, lookup.table.frames)
