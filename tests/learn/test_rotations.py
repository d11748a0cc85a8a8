import math
import re

import numpy as np
import pytest
import torch

from dyndis_learn.rotations import (
    ActionRotations,
    circle_planes,
    givens_product,
    matrix_power,
    n_planes,
    plane_pairs,
    round_robin_rounds,
    skew_symmetric,
)

DIMS = [2, 3, 4, 5, 8, 16, 32]


def givens(n: int, i: int, j: int, theta: float) -> torch.Tensor:
    """The textbook Givens rotation in plane (i, j)."""
    g = torch.eye(n, dtype=torch.float64)
    g[i, i] = g[j, j] = math.cos(theta)
    g[j, i] = math.sin(theta)
    g[i, j] = -math.sin(theta)
    return g


@pytest.mark.parametrize("n", DIMS)
def test__round_robin__every_plane_once_in_disjoint_rounds(n):
    rounds = round_robin_rounds(n)
    planes = sorted(p for r in rounds for p in r)
    assert planes == [tuple(p) for p in plane_pairs(n).tolist()]
    assert len(rounds) == (n - 1 if n % 2 == 0 else n)
    for r in rounds:
        coordinates = [c for plane in r for c in plane]
        assert len(coordinates) == len(set(coordinates))


@pytest.mark.parametrize("n", DIMS)
@pytest.mark.parametrize("build", ["givens", "exp"])
def test__matrices__are_rotations(n, build):
    angles = torch.randn(7, n_planes(n), dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    r = givens_product(angles, n) if build == "givens" else torch.linalg.matrix_exp(skew_symmetric(angles, n))
    eye = torch.eye(n, dtype=torch.float64)
    torch.testing.assert_close(r @ r.mT, eye.expand_as(r), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(7, dtype=torch.float64))


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test__one_active_plane__is_the_givens_matrix_and_matches_matrix_exp(n):
    for k, (i, j) in enumerate(plane_pairs(n).tolist()):
        angles = torch.zeros(n_planes(n), dtype=torch.float64)
        angles[k] = 0.7
        expected = givens(n, i, j, 0.7)
        torch.testing.assert_close(givens_product(angles, n), expected)
        torch.testing.assert_close(torch.linalg.matrix_exp(skew_symmetric(angles, n)), expected)


def test__givens_product__is_the_ordered_product_of_its_rounds():
    n = 5
    angles = torch.randn(n_planes(n), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    index = {tuple(p): k for k, p in enumerate(plane_pairs(n).tolist())}
    expected = torch.eye(n, dtype=torch.float64)
    for r in round_robin_rounds(n):  # round 0 first, i.e. rightmost
        for i, j in r:
            expected = givens(n, i, j, float(angles[index[(i, j)]])) @ expected
    torch.testing.assert_close(givens_product(angles, n), expected)


def test__givens_product__batched_equals_one_by_one():
    angles = torch.randn(3, 4, n_planes(6), generator=torch.Generator().manual_seed(1))
    batched = givens_product(angles, 6)
    for a in range(3):
        for b in range(4):
            torch.testing.assert_close(batched[a, b], givens_product(angles[a, b], 6))


def test__matrix_power__matches_repeated_products_including_inverses():
    r = givens_product(torch.randn(5, n_planes(4), dtype=torch.float64), 4)
    exponents = torch.tensor([0, 1, 5, -3, 12])
    powers = matrix_power(r, exponents)
    for q, m in enumerate(exponents.tolist()):
        torch.testing.assert_close(powers[q], torch.linalg.matrix_power(r[q], m))


@pytest.mark.parametrize("parametrisation", ["givens", "exp"])
def test__action_rotations__magnitude_applies_the_action_m_times(parametrisation):
    rotations = ActionRotations(3, 4, parametrisation, init_scale=0.5, generator=torch.Generator().manual_seed(0))
    actions = torch.tensor([0, 1, 2, 2])
    magnitudes = torch.tensor([3, -2, 0, 4])
    once = rotations.matrices()
    expected = torch.stack(
        [torch.linalg.matrix_power(once[a], int(m)) for a, m in zip(actions, magnitudes, strict=True)]
    )
    torch.testing.assert_close(rotations(actions, magnitudes), expected, atol=1e-5, rtol=1e-5)


def test__action_rotations__gradient_reaches_every_angle():
    rotations = ActionRotations(4, 6)
    rotations.matrices().sum().backward()
    assert rotations.angles.grad is not None and torch.all(rotations.angles.grad != 0)


def test__action_rotations__accepts_numpy_integers():
    # a Gymnasium Discrete space's ``n`` is a NumPy integer
    rotations = ActionRotations(np.int64(3), np.int32(4))
    assert rotations.n_actions == 3 and type(rotations.n_actions) is int
    assert rotations.matrices().shape == (3, 4, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_actions": 0, "latent_dim": 4}, "`n_actions` must be a positive integer, got 0."),
        ({"n_actions": 2, "latent_dim": 1}, "`latent_dim` must be an integer >= 2, got 1."),
        (
            {"n_actions": 2, "latent_dim": 4, "parametrisation": "cayley"},
            "Invalid `parametrisation`, expected one of ['givens', 'exp'], got 'cayley'.",
        ),
    ],
)
def test__action_rotations__bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ActionRotations(**kwargs)


def test__givens_product__wrong_number_of_angles():
    with pytest.raises(ValueError, match=re.escape("`angles` must have shape (..., 6) for latent_dim=4, got (2, 5).")):
        givens_product(torch.zeros(2, 5), 4)


@pytest.mark.parametrize(("n", "expected"), [(2, [0]), (3, [0]), (4, [0, 5]), (5, [0, 7]), (6, [0, 9, 14])])
def test__circle_planes__are_the_positions_of_the_planes_2k_2k_plus_1(n, expected):
    assert circle_planes(n) == expected
    assert [plane_pairs(n)[k].tolist() for k in circle_planes(n)] == [[2 * c, 2 * c + 1] for c in range(n // 2)]
