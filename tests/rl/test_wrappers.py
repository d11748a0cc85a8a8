"""Latent and one-hot observation wrappers: spaces, dtypes, values; the batched latent VecEnv wrapper."""

import re

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

from dyndis_learn import Learner
from dyndis_learn.rl import VecLatentObservation, make_sb3_vec_env
from dyndis_learn.wrappers import FactorOneHotObservation, LatentObservation


@pytest.fixture(scope="module")
def learner(tiny_model_path):
    return Learner.load(tiny_model_path)


def test__latent_observation(learner):
    env = LatentObservation(gym.make("DynDis/GridWorld-v0", image_size=16), learner.model)
    obs, _ = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert obs.dtype == np.float32 and obs.shape == (4,)
    np.testing.assert_allclose(np.linalg.norm(obs), 1.0, atol=1e-5)
    image, _ = env.unwrapped.reset(seed=0)
    np.testing.assert_allclose(obs, learner.encode(image), atol=1e-6)
    check_env(env)


def test__latent_observation_of_goal_tasks(learner):
    env = LatentObservation(gym.make("DynDis/GridWorldGoal-v0", image_size=16), learner.model)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    assert all(v.shape == (4,) and v.dtype == np.float32 for v in obs.values())


def test__latent_observation_refuses_other_images(learner):
    with pytest.raises(ValueError, match=re.escape("`env` must have uint8 image observations of shape (16, 16, 3)")):
        LatentObservation(gym.make("DynDis/GridWorld-v0", image_size=32), learner.model)


def test__one_hot_factors():
    env = FactorOneHotObservation(gym.make("DynDis/GridWorld-v0", factors={"colour": 3}))
    obs, _info = env.reset(seed=0, options={"factors": [1, 4, 0, 2, 0]})
    assert env.observation_space.shape == (5 + 5 + 3,)
    np.testing.assert_array_equal(np.flatnonzero(obs), [1, 5 + 4, 10 + 2])
    obs, *_ = env.step(0)
    np.testing.assert_array_equal(np.flatnonzero(obs), [2, 5 + 4, 10 + 2])
    check_env(env)


def test__vec_latent_observation_encodes_terminal_observations(learner):
    venv = VecLatentObservation(make_sb3_vec_env("DynDis/GridWorld-v0", n_envs=3, seed=0, image_size=16,
                                                 max_episode_steps=2), learner.model)
    obs = venv.reset()
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    venv.step(np.zeros(3, dtype=np.int64))
    obs, _, dones, infos = venv.step(np.zeros(3, dtype=np.int64))
    assert dones.all()
    assert all(info["terminal_observation"].shape == (4,) for info in infos)


def test__latent_observation_of_decoder_checked_encodings():
    import torch

    from dyndis_learn.model import DEFAULT_SYNTHESIS_MODES, WorldModel

    torch.manual_seed(0)
    binned = WorldModel((16, 16, 3), 4, latent_dim=4, channels=(8, 8), hidden_dim=32, latent_manifold="torus",
                        angle_bins=12, lookup_feature_map=True)  # fmt: skip
    env = LatentObservation(gym.make("DynDis/GridWorld-v0", image_size=16), binned, synthesis_modes="auto")
    assert env.synthesis_modes == DEFAULT_SYNTHESIS_MODES
    obs, _ = env.reset(seed=0)
    image, _ = env.unwrapped.reset(seed=0)
    with torch.no_grad():
        checked = binned.encode_by_synthesis(torch.from_numpy(image)[None])[0].numpy()
        plain = binned.encode(torch.from_numpy(image)[None])[0].numpy()
    np.testing.assert_allclose(obs, checked, atol=1e-6)
    assert not np.allclose(checked, plain)  # the untrained encoder hesitates: the decoder chose
    own = LatentObservation(gym.make("DynDis/GridWorld-v0", image_size=16), binned)  # the encoder's own by default
    np.testing.assert_allclose(own.reset(seed=0)[0], plain, atol=1e-6)
    venv = VecLatentObservation(make_sb3_vec_env("DynDis/GridWorld-v0", n_envs=2, seed=0, image_size=16), binned,
                                synthesis_modes=3)  # fmt: skip
    assert venv.reset().shape == (2, 4) and venv.synthesis_modes == 3


def test__latent_observation_refuses_modes_without_angle_bins(learner):
    with pytest.raises(ValueError, match=r"`synthesis_modes` above 1 needs an angle-bin model"):
        LatentObservation(gym.make("DynDis/GridWorld-v0", image_size=16), learner.model, synthesis_modes=2)
