"""A tiny saved learner (16 x 16 GridWorld) for the RL integration tests."""

import pytest

from dyndis_learn import Learner, TrainConfig
from tests.learn.fixtures import TINY


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    learner = Learner(TrainConfig.from_dict(TINY))
    learner.train(progress=False)
    return learner.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")
