import re

import pytest
import torch

from dyndis_learn.regularizers import WeightSchedule, dominant_share, entanglement, entanglement_penalty

ANGLES = torch.tensor([[3.0, 1.0, -2.0], [0.0, 0.5, 0.0]])  # theta^2: [9, 1, 4] and [0, 0.25, 0]


def test__entanglement__sum_of_squares_minus_largest_square():
    torch.testing.assert_close(entanglement(ANGLES), torch.tensor([5.0, 0.0]))


def test__dominant_share__largest_square_over_sum():
    torch.testing.assert_close(dominant_share(ANGLES), torch.tensor([9 / 14, 1.0]))
    assert dominant_share(torch.zeros(1, 3)).item() == 1.0


@pytest.mark.parametrize(("target", "value", "expected"), [("min", 0.0, 2.5), ("max", 0.0, -2.5), ("value", 1.0, 2.25)])
def test__penalty__targets(target, value, expected):
    assert entanglement_penalty(ANGLES, target, value).item() == pytest.approx(expected)


def test__penalty__min_target_pushes_only_the_minor_angles():
    angles = ANGLES.clone().requires_grad_()
    entanglement_penalty(angles, "min").backward()
    torch.testing.assert_close(angles.grad, torch.tensor([[0.0, 1.0, -2.0], [0.0, 0.0, 0.0]]))


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
