
import pytest
import torch

from dyndis_learn.regularizers import dominant_share, entanglement, entanglement_penalty

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
