"""DynDis/Cars3D-v0: registration, factors, sources chosen by the arguments, argument errors.

The registry-wide contracts (both checkers, seeding, group law, pickling, native vs sync vector envs in
NEXT_STEP and SAME_STEP modes) run for Cars3D in tests/envs/test_envs.py and test_vector_env.py.
"""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import dyndis_envs
from dyndis_envs.cars3d import AZIMUTHS, ELEVATIONS, Cars3DEnv, Cars3DRenderedTable, Cars3DRenderSource


def test__registered_id():
    assert "DynDis/Cars3D-v0" in dyndis_envs.ENV_IDS
    spec = gym.spec("DynDis/Cars3D-v0")
    assert spec.entry_point == "dyndis_envs.cars3d:Cars3DEnv"
    assert spec.vector_entry_point == "dyndis_envs.cars3d:Cars3DVectorEnv"
    assert spec.max_episode_steps == 200


def test__factors_values_and_actions():
    env = gym.make("DynDis/Cars3D-v0", factors={"object": [5, 0, 9]}, image_size=32, cache=False)
    space = env.unwrapped.factor_space
    assert space.names == ("elevation", "azimuth", "object")
    assert space.sizes == (4, 24, 3)
    assert ELEVATIONS == (0.0, 10.0, 20.0, 30.0)
    assert tuple(range(0, 360, 15)) == AZIMUTHS
    assert len(space.factors[2].values) == 183
    assert space.values_of([0, 1, 0]) == {"elevation": 0.0, "azimuth": 15.0, "object": "005_sedan"}
    assert env.action_space == gym.spaces.Discrete(6)
    assert space.action_meanings() == [
        "elevation+1", "elevation-1", "azimuth+1", "azimuth-1", "object+1", "object-1",
    ]
    assert env.observation_space == gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)


def test__a_single_car_has_four_actions():
    env = Cars3DEnv({"object": [7]}, image_size=16, cache=False)
    assert env.action_space == gym.spaces.Discrete(4)


def test__sources_follow_the_arguments(data_dir):
    rendered = Cars3DEnv({"object": [2, 3], "elevation": [1]}, image_size=16, cache=False)
    assert isinstance(rendered.source, Cars3DRenderSource) and rendered.backend == "procedural"
    assert len(rendered.frames.table.frames) == rendered.factor_space.n_states == 48  # only the chosen states
    assert not data_dir.exists()  # cache=False never touches the disk
    cached = Cars3DEnv({"object": [2, 3], "elevation": [1]}, image_size=16)
    assert isinstance(cached.source, Cars3DRenderedTable) and cached.frames.table is None
    assert sorted(p.suffix for p in next((data_dir / "cache").iterdir()).iterdir()) == [".json"] * 2 + [".npy"] * 2


def test__cached_and_rendered_views_agree():
    kwargs = {"factors": {"object": [11, 4]}, "image_size": 24}
    a = gym.make("DynDis/Cars3D-v0", cache=False, **kwargs)
    b = gym.make("DynDis/Cars3D-v0", cache=True, **kwargs)

    def rollout(env):
        out = [env.reset(seed=4)]
        out += [env.step(int(a)) for a in np.random.default_rng(1).integers(0, 6, 30)]
        return out

    assert data_equivalence(rollout(a), rollout(b), exact=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"image_size": 8}, ValueError, "`image_size` must be an integer in [16, 256], got 8."),
        ({"image_size": 64.0}, ValueError, "`image_size` must be an integer in [16, 256], got 64.0."),
        ({"image_size": 10_000}, ValueError, "`image_size` must be an integer in [16, 256], got 10000."),
        ({"image_size": 257}, ValueError, "`image_size` must be an integer in [16, 256], got 257."),
        ({"cache": "yes"}, TypeError, "`cache` must be True or False, got 'yes'."),
        ({"backend": "gpu"}, ValueError, "Invalid `backend`, expected one of ('procedural', 'file', 'auto'), got"),
        ({"factors": {"colour": 2}}, ValueError, "Unknown factor name(s) ['colour'] in `factors`"),
        (
            {"factors": {"object": 184}},
            ValueError,
            "Invalid subset for factor 'object': expected None or 'all', an int in [1, 183], or a non-empty list "
            "of distinct indices in [0, 182], got 184.",
        ),
        ({"factors": {"azimuth": [24]}}, ValueError, "Invalid subset for factor 'azimuth'"),
        ({"factors": {"elevation": 1, "azimuth": 1, "object": 1}}, ValueError, "`factors` leaves no active factor"),
        ({"render_mode": "human"}, ValueError, "Invalid `render_mode`, expected None or one of ['rgb_array']"),
    ],
)
def test__bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Cars3DEnv(**{"factors": {"object": 1}, "cache": False, **kwargs})
