"""A tiny saved learner (16 x 16 GridWorld) for the RL integration tests."""

import pytest

from dyndis_learn import Learner
from tests.learn.conftest import TINY


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    learner = Learner.from_env(**TINY)
    learner.train(progress=False)
    return learner.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")
