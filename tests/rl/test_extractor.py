"""The latent features extractor: frozen through SB3 training and save / load, or fine-tuned on request."""

import re

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from dyndis_learn import Learner
from dyndis_learn.rl import LatentFeaturesExtractor, make_sb3_vec_env

ENV_KWARGS = {"image_size": 16, "max_episode_steps": 8}


def _agent(path, fine_tune=False, seed=0):
    env = make_sb3_vec_env("DynDis/GridWorldReach-v0", n_envs=2, seed=seed, **ENV_KWARGS)
    kwargs = {"features_extractor_class": LatentFeaturesExtractor,
              "features_extractor_kwargs": {"model_path": str(path), "fine_tune": fine_tune}}
    return PPO("CnnPolicy", env, policy_kwargs=kwargs, n_steps=16, batch_size=16, n_epochs=2, seed=seed)


def _encoder_state(agent):
    return {k: v.clone() for k, v in agent.policy.features_extractor.encoder.state_dict().items()}


def test__features_are_the_learner_encodings(tiny_model_path):
    agent = _agent(tiny_model_path)
    obs = agent.env.reset()
    with torch.no_grad():
        features = agent.policy.extract_features(agent.policy.obs_to_tensor(obs)[0], agent.policy.features_extractor)
    expected = Learner.load(tiny_model_path).encode(obs.transpose(0, 2, 3, 1))  # SB3 made it channels first
    np.testing.assert_allclose(features.numpy(), expected, atol=1e-5)
    assert agent.policy.features_extractor.features_dim == 4


def test__frozen_encoder_stays_frozen_and_in_eval_mode_through_learn(tiny_model_path):
    agent = _agent(tiny_model_path)
    before = _encoder_state(agent)
    agent.learn(48)
    extractor = agent.policy.features_extractor
    assert not extractor.encoder.training  # SB3 switched the policy to train mode during learn()
    assert all(not p.requires_grad for p in extractor.encoder.parameters())
    for key, value in _encoder_state(agent).items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test__agents_with_different_seeds_start_from_different_policies(tiny_model_path):
    first, second = _agent(tiny_model_path, seed=0), _agent(tiny_model_path, seed=1)
    assert not torch.equal(first.policy.action_net.weight, second.policy.action_net.weight)
    torch.testing.assert_close(_agent(tiny_model_path, seed=0).policy.action_net.weight,
                               first.policy.action_net.weight, rtol=0, atol=0)


def test__survives_sb3_save_and_load(tiny_model_path, tmp_path):
    agent = _agent(tiny_model_path)
    agent.learn(32)
    agent.save(tmp_path / "agent.zip")
    loaded = PPO.load(tmp_path / "agent.zip")
    obs = agent.env.reset()
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert not loaded.policy.features_extractor.fine_tune
    for key, value in _encoder_state(loaded).items():
        torch.testing.assert_close(value, _encoder_state(agent)[key], rtol=0, atol=0)


def test__fine_tune_trains_the_encoder(tiny_model_path):
    agent = _agent(tiny_model_path, fine_tune=True)
    before = _encoder_state(agent)
    agent.learn(48)
    assert any(not torch.equal(v, before[k]) for k, v in _encoder_state(agent).items())


def test__mismatched_images_are_refused(tiny_model_path):
    env = make_sb3_vec_env("DynDis/GridWorldReach-v0", n_envs=1, image_size=32)
    with pytest.raises(ValueError, match=re.escape("The observation space (3, 32, 32) does not match the model's")):
        PPO("CnnPolicy", env, policy_kwargs={"features_extractor_class": LatentFeaturesExtractor,
                                            "features_extractor_kwargs": {"model_path": str(tiny_model_path)}})
