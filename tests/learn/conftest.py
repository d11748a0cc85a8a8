"""Tiny configurations that keep the dyndis-learn tests fast while still exercising every code path."""

import pytest

from dyndis_learn import TrainConfig

#: A 16 x 16 GridWorld (5 x 5 positions), a small network and a few short episodes per step.
TINY: dict = {
    "env_id": "DynDis/GridWorld-v0",
    "env_kwargs": {"image_size": 16},
    "model": {"latent_dim": 4, "channels": [8, 8], "hidden_dim": 32},
    "episodes_per_step": 2,
    "episode_steps": 4,
    "steps": 6,
    "warmup_steps": 2,
    "exploration_batches": 1,  # 800 random transitions see every edge of the 25 states' graph
    "exploration_episodes": 32,
    "exploration_steps": 25,
    "dynamics_ramp_steps": 2,
    "log_every": 1,
    "checkpoint_every": 0,
    "threads": 1,
    "evaluation": {"episodes": 2, "horizon": 12, "gif_steps": 4},
}


@pytest.fixture
def tiny_config() -> TrainConfig:
    return TrainConfig.from_dict(TINY)
