import json
import re

import pytest

from dyndis_learn import ModelConfig, RegularizerConfig, TrainConfig
from dyndis_learn.config import SPECTRAL_ANGLE_LR


def test__round_trip_through_json():
    config = TrainConfig(steps=123, model=ModelConfig(latent_dim=6, channels=(16, 16)))
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"steps": 0}, "TrainConfig.steps must be an integer >= 1, got 0."),
        ({"lr": -1e-3}, "TrainConfig.lr must be a finite number > 0, got -0.001."),
        (
            {"eigenmap_candidates": 3},
            "TrainConfig.eigenmap_candidates must be >= model.latent_dim (4), got 3.",
        ),
        ({"angle_lr": -1e-3}, "TrainConfig.angle_lr must be a finite number >= 0, got -0.001."),
        ({"decay_start": 1.5}, "TrainConfig.decay_start must be a finite number >= 0 and <= 1, got 1.5."),
        ({"env_kwargs": [1, 2]}, "TrainConfig.env_kwargs must be a dict of keyword arguments, got [1, 2]."),
        ({"model": {"latent_dim": 1}}, "ModelConfig.latent_dim must be an integer >= 2, got 1."),
        (
            {"model": {"encoder_norm": "batch"}},
            "ModelConfig.encoder_norm must be one of ['none', 'instance'], got 'batch'.",
        ),
        (
            {"model": {"parametrisation": "quaternion"}},
            "ModelConfig.parametrisation must be one of ['givens', 'exp'], got 'quaternion'.",
        ),
        (
            {"regularizer": {"target": "median"}},
            "RegularizerConfig.target must be one of ['min', 'max', 'value'], got 'median'.",
        ),
        (
            {"autoencoder_weight": 0.0, "rollout_weight": 0.0},
            "TrainConfig: autoencoder_weight and rollout_weight cannot both be 0",
        ),
        ({"stepz": 10}, "Unknown TrainConfig field(s): 'stepz' (did you mean 'steps'?)."),
        ({"smoothness_weight": -1.0}, "TrainConfig.smoothness_weight must be a finite number >= 0, got -1.0."),
        ({"whitening_weight": float("inf")}, "TrainConfig.whitening_weight must be a finite number >= 0, got inf."),
        ({"whitening_weight": "1"}, "TrainConfig.whitening_weight must be a finite number >= 0, got '1'."),
        ({"align_planes": 1}, "TrainConfig.align_planes must be True or False, got 1."),
        ({"warmup_episodes_per_step": 0}, "TrainConfig.warmup_episodes_per_step must be an integer >= 1, got 0."),
        ({"warmup_episode_steps": 2.5}, "TrainConfig.warmup_episode_steps must be an integer >= 1, got 2.5."),
        ({"align_planes": "no"}, "TrainConfig.align_planes must be True or False, got 'no'."),
        (
            {"model": {"latentdim": 3}},
            "Unknown ModelConfig field(s): 'latentdim' (did you mean 'latent_dim'?).",
        ),
    ],
)
def test__bad_values_give_clear_errors(data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict(data)


def test__bool_is_not_an_int():
    with pytest.raises(ValueError, match=re.escape("TrainConfig.seed must be an integer >= 0, got True.")):
        TrainConfig(seed=True)


def test__schedules():
    config = TrainConfig(
        steps=100,
        warmup_steps=10,
        dynamics_ramp_steps=20,
        decay_start=0.5,
        final_lr_fraction=0.01,
        regularizer=RegularizerConfig(weight=2.0),
    )
    assert [config.dynamics_weight(s) for s in (0, 9, 10, 19, 29, 50)] == pytest.approx([0, 0, 0.05, 0.5, 1, 1])
    assert config.regularizer_weight(9) == 0.0 and config.regularizer_weight(20) == pytest.approx(1.0)
    assert config.regularizer_weight(99) == pytest.approx(2.0)
    assert config.lr_scale(49) == 1.0 and config.lr_scale(75) == pytest.approx(0.1)


def test__spectral_terms_are_full_in_the_warmup_and_fade_out_with_the_dynamics_ramp():
    config = TrainConfig(steps=100, warmup_steps=10, dynamics_ramp_steps=20, warmup="spectral")
    assert [config.spectral_scale(s) for s in (0, 9, 10, 19, 29, 50)] == pytest.approx([1, 1, 0.95, 0.5, 0, 0])
    # the graph warm-up does without them
    assert {config.replace(warmup="graph").spectral_scale(s) for s in (0, 9, 10, 50)} == {0.0}


def test__angle_lr_defaults_to_kept_angles_under_the_graph_warmup_and_learned_under_the_spectral_one():
    graph, spectral = TrainConfig(warmup="graph"), TrainConfig(warmup="spectral")
    assert graph.angle_lr is None and graph.angle_lr_value == 0.0
    assert spectral.angle_lr_value == SPECTRAL_ANGLE_LR > 0
    assert graph.learning_rate("angles", graph.steps - 1) == 0.0
    assert TrainConfig(warmup="graph", angle_lr=1e-3).angle_lr_value == 1e-3
    # None survives the JSON round trip, so a saved run resolves it the same way
    assert TrainConfig.from_dict(graph.to_dict()).angle_lr is None
