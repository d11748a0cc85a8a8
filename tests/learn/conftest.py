"""Fixtures of the dyndis-learn tests (the configurations themselves are in ``tests.learn.fixtures``)."""

import pytest

from dyndis_learn import TrainConfig
from tests.learn.fixtures import TINY


@pytest.fixture
def tiny_config() -> TrainConfig:
    return TrainConfig.from_dict(TINY)
