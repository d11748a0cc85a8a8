import re

import pytest

from dyndis_learn import TrainConfig
from dyndis_learn.schedules import Schedules, WeightSchedule


def _schedules(**changes) -> Schedules:
    config = TrainConfig(steps=100).replace(
        optim={"dynamics_ramp_steps": 20, "decay_start": 0.5, "final_lr_fraction": 0.01}, regularizer={"weight": 2.0}
    )
    return Schedules.from_config(config.replace(**changes), warmup_steps=10, default_angle_lr=1e-2)


def test__dynamics_ramp_regularizer_and_decay():
    s = _schedules()
    assert [s.dynamics_weight(k) for k in (0, 9, 10, 19, 29, 50)] == pytest.approx([0, 0, 0.05, 0.5, 1, 1])
    assert s.regularizer_weight(9) == 0.0 and s.regularizer_weight(20) == pytest.approx(1.0)
    assert s.regularizer_weight(99) == pytest.approx(2.0)
    assert s.lr_scale(49) == 1.0 and s.lr_scale(75) == pytest.approx(0.1)


def test__angle_learning_rate_follows_the_warmup_default_and_the_ramp():
    s = _schedules()
    assert s.learning_rate("angles", 5) == 0.0  # ramped in with the dynamics terms
    assert s.learning_rate("angles", 40) == pytest.approx(1e-2)
    assert _schedules(optim={"angle_lr": 3e-3}).learning_rate("angles", 40) == pytest.approx(3e-3)
    assert _schedules(optim={"angle_lr_ramp": False}).learning_rate("angles", 0) == pytest.approx(1e-2)
    assert s.learning_rate("encoder", 0) == s.learning_rate("decoder", 0) == pytest.approx(2e-3)


def test__without_a_warmup_the_ramp_starts_at_once():
    config = TrainConfig(steps=10).replace(optim={"dynamics_ramp_steps": 4})
    s = Schedules.from_config(config, warmup_steps=0, default_angle_lr=1e-2)
    assert [s.dynamics_weight(k) for k in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1, 1])


def test__schedule__constant_and_linear_ramp():
    assert WeightSchedule("constant", end=0.3)(0) == 0.3
    ramp = WeightSchedule("linear", end=1.0, start=0.2, delay=10, ramp=20)
    assert [ramp(s) for s in (0, 10, 20, 30, 99)] == pytest.approx([0.2, 0.2, 0.6, 1.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"kind": "cosine"},
            "Invalid schedule `kind`, expected one of ['constant', 'linear'], got 'cosine'.",
        ),
        ({"end": -1.0}, "Schedule `end` must be a finite number >= 0, got -1.0."),
        ({"ramp": 1.5}, "Schedule `ramp` must be an integer >= 0, got 1.5."),
    ],
)
def test__schedule__bad_values(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        WeightSchedule(**kwargs)
