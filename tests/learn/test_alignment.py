import math

import pytest
import torch

from dyndis_learn.alignment import canonical_planes, common_planes, fit_planes, fit_rotations, plane_angles
from dyndis_learn.rotations import ActionRotations, Parametrisation, givens_product, n_planes, plane_pairs
from tests.learn.test_rotations import givens


def _orthogonal(n: int, seed: int, proper: bool = True) -> torch.Tensor:
    """A random orthogonal matrix (float64); a rotation if ``proper``, else a reflection."""
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    if (torch.linalg.det(q) > 0) != proper:
        q[:, 0] = -q[:, 0]
    return q


def _factor_rotations(n: int, cycle_lengths: list[int]) -> torch.Tensor:
    """Actions ``2f`` / ``2f + 1`` turn plane ``(2f, 2f + 1)`` by ``+-2 pi / N_f`` (they commute), shape (A, n, n)."""
    return torch.stack(
        [
            givens(n, 2 * f, 2 * f + 1, sign * 2 * math.pi / length)
            for f, length in enumerate(cycle_lengths)
            for sign in (1, -1)
        ]
    )


def _transitions(rotations: torch.Tensor, per_action: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random unit encodings and their exact images under each action's rotation, actions interleaved."""
    n_actions, n = rotations.shape[0], rotations.shape[-1]
    generator = torch.Generator().manual_seed(seed)
    before = torch.nn.functional.normalize(
        torch.randn(n_actions * per_action, n, dtype=torch.float64, generator=generator), dim=-1
    )
    actions = torch.arange(n_actions).repeat(per_action)
    after = (rotations[actions] @ before.unsqueeze(-1)).squeeze(-1)
    return before, after, actions


def _cost(rotation: torch.Tensor, before: torch.Tensor, after: torch.Tensor) -> float:
    return float((before @ rotation.T - after).square().sum())


def _off_block(matrices: torch.Tensor) -> torch.Tensor:
    """The entries of (..., n, n) outside the 2 x 2 diagonal blocks (0, 1), (2, 3), ... (and the odd last 1 x 1)."""
    n = matrices.shape[-1]
    block = torch.arange(n) // 2
    return matrices[..., block[:, None] != block[None, :]]


@pytest.mark.parametrize(("n", "n_actions"), [(4, 3), (6, 5)])
def test__fit_rotations__recovers_exact_rotations_and_the_identity_for_unseen_actions(n, n_actions):
    truth = torch.stack([_orthogonal(n, seed) for seed in range(n_actions)])
    before, after, actions = _transitions(truth, per_action=2 * n, seed=n)
    fitted = fit_rotations(before, after, actions, n_actions + 1)  # the last action never occurs
    torch.testing.assert_close(fitted[:n_actions], truth, atol=1e-10, rtol=0)
    torch.testing.assert_close(fitted[n_actions], torch.eye(n, dtype=torch.float64), atol=0, rtol=0)


def test__fit_rotations__gives_the_best_proper_rotation_when_the_data_say_reflection():
    n = 4
    reflection = _orthogonal(n, seed=3, proper=False)
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([3.0, 2.0, 1.5, 1.0], dtype=torch.float64)  # distinct singular values
    before = torch.randn(200, n, dtype=torch.float64, generator=generator) * scales
    after = before @ reflection.T + 0.05 * torch.randn(200, n, dtype=torch.float64, generator=generator)
    fitted = fit_rotations(before, after, torch.zeros(200, dtype=torch.long), 1)[0]
    torch.testing.assert_close(fitted @ fitted.T, torch.eye(n, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.linalg.det(fitted).item() == pytest.approx(1.0)
    # A minimum over SO(n): no small turn in any plane, either way, lowers the cost (a wrongly flipped
    # singular direction is a saddle point that some turn descends from).
    cost = _cost(fitted, before, after)
    for k in range(n_planes(n)):
        for step in (1e-3, -1e-3):
            angles = torch.zeros(n_planes(n), dtype=torch.float64)
            angles[k] = step
            assert _cost(givens_product(angles, n) @ fitted, before, after) > cost
    assert cost < _cost(torch.eye(n, dtype=torch.float64), before, after)


@pytest.mark.parametrize(
    ("n", "cycle_lengths"),
    [(4, [5, 7]), (4, [2, 5]), (6, [5, 7, 3]), (6, [5, 7]), (5, [5, 7])],
    ids=["two-factors", "rotation-by-pi", "three-factors", "an-idle-plane", "odd-dimension"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test__common_planes__block_diagonalise_commuting_rotations(n, cycle_lengths, seed):
    basis = _orthogonal(n, seed=100 + seed)
    rotations = basis @ _factor_rotations(n, cycle_lengths) @ basis.T
    z = common_planes(rotations, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(z.T @ z, torch.eye(n, dtype=torch.float64), atol=1e-10, rtol=0)
    aligned = z.T @ rotations @ z
    assert _off_block(aligned).abs().max().item() < 1e-5
    # Each action turns one plane, by its factor's angle.
    angles = plane_angles(aligned)
    expected = sorted(2 * math.pi / length for length in cycle_lengths for _ in (1, -1))
    largest = angles.abs().max(dim=-1)
    assert sorted(largest.values.tolist()) == pytest.approx(expected, abs=1e-6)
    assert (angles.abs() > 1e-6).sum(dim=-1).tolist() == [1] * len(rotations)


def _torus_transitions(n: int, cycle_lengths: list[int], per_action: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Transitions between random states of a product of cycles, embedded as the first Fourier mode of each
    cycle in plane ``(2f, 2f + 1)`` (an odd last coordinate constant), actions ``2f`` / ``2f + 1`` = +-1."""
    rotations = _factor_rotations(n, cycle_lengths)
    generator = torch.Generator().manual_seed(seed)
    n_actions = len(rotations)
    states = torch.stack(
        [torch.randint(length, (n_actions * per_action,), generator=generator) for length in cycle_lengths]
    )
    before = torch.zeros(n_actions * per_action, n, dtype=torch.float64)
    for f, length in enumerate(cycle_lengths):
        phase = 2 * math.pi * states[f] / length
        before[:, 2 * f], before[:, 2 * f + 1] = phase.cos(), phase.sin()
    if n % 2:
        before[:, -1] = 1.0
    before = before / before.norm(dim=-1, keepdim=True)
    actions = torch.arange(n_actions).repeat(per_action)
    after = (rotations[actions] @ before.unsqueeze(-1)).squeeze(-1)
    return before, after, actions


@pytest.mark.parametrize(
    ("n", "cycle_lengths"),
    [(4, [5, 7]), (4, [5, 5]), (4, [2, 5]), (6, [5, 7, 3]), (5, [5, 7])],
    ids=["two-factors", "equal-cycles", "rotation-by-pi", "three-factors", "odd-dimension"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test__fit_planes__the_coordinates_do_not_depend_on_the_basis_the_encodings_come_in(n, cycle_lengths, seed):
    # Which orthonormal pair of each plane an eigen-solver returns, and in which order near-equal planes come,
    # is rounding's choice (it differs between CPUs' kernels); a turned basis of the same encodings is the
    # same choice made differently. The canonical planes give the same coordinates and angles either way.
    before, after, actions = _torus_transitions(n, cycle_lengths, per_action=8, seed=seed)
    n_actions = 2 * len(cycle_lengths)
    basis, angles = fit_planes(before, after, actions, n_actions, torch.Generator().manual_seed(seed))
    turn = _orthogonal(n, seed=200 + seed)
    turned_basis, turned_angles = fit_planes(
        before @ turn.T, after @ turn.T, actions, n_actions, torch.Generator().manual_seed(seed)
    )
    torch.testing.assert_close((before @ turn.T) @ turned_basis, before @ basis, atol=1e-6, rtol=0)
    torch.testing.assert_close(turned_angles, angles, atol=1e-6, rtol=0)
    # Ordered and oriented by the actions: action 2f turns plane f by +2 pi / N_f (a half turn by +pi).
    columns = [plane_pairs(n).tolist().index([2 * f, 2 * f + 1]) for f in range(len(cycle_lengths))]
    expected = torch.tensor([2 * math.pi / length for length in cycle_lengths], dtype=torch.float64)
    torch.testing.assert_close(angles[2 * torch.arange(len(cycle_lengths)), columns], expected, atol=1e-9, rtol=0)
    # The first point lies on each plane's first axis, and on the positive side of an odd last axis.
    coordinates = before[0] @ basis
    assert coordinates[1::2][: n // 2].abs().max().item() < 1e-9
    assert torch.all(coordinates[0::2] > 0)


def test__canonical_planes__orders_the_planes_by_their_actions_and_puts_an_idle_plane_last():
    n = 6
    before, after, actions = _torus_transitions(n, [5, 7], per_action=8, seed=0)  # plane (4, 5) is idle
    rotations = fit_rotations(before, after, actions, 4)
    # The exact planes, the idle one first and the others swapped, each pair turned within its plane.
    turned = torch.block_diag(*[_orthogonal(2, seed) for seed in range(3)])
    solver_basis = torch.eye(n, dtype=torch.float64)[:, [4, 5, 2, 3, 0, 1]] @ turned
    basis = canonical_planes(solver_basis, rotations, before)
    torch.testing.assert_close(basis.T @ basis, torch.eye(n, dtype=torch.float64), atol=1e-12, rtol=0)
    assert basis[:4, 4:].abs().max().item() < 1e-12  # the idle plane comes last
    angles = plane_angles(basis.T @ rotations @ basis)
    first, second = plane_pairs(n).tolist().index([0, 1]), plane_pairs(n).tolist().index([2, 3])
    assert angles[0, first].item() == pytest.approx(2 * math.pi / 5)
    assert angles[2, second].item() == pytest.approx(2 * math.pi / 7)


@pytest.mark.parametrize("parametrisation", list(Parametrisation))
def test__plane_angles__rebuild_the_aligned_rotations_in_either_parametrisation(parametrisation):
    n = 6
    basis = _orthogonal(n, seed=7)
    rotations = (basis @ _factor_rotations(n, [5, 7, 2]) @ basis.T).float()  # float32, as in training
    z = common_planes(rotations, torch.Generator().manual_seed(0))
    assert z.dtype == torch.float32
    aligned = z.T @ rotations @ z
    model = ActionRotations(len(rotations), n, parametrisation)
    with torch.no_grad():
        model.angles.copy_(plane_angles(aligned))
    torch.testing.assert_close(model.matrices(), aligned, atol=1e-5, rtol=0)


def test__plane_angles__exact_angles_with_the_givens_sign_convention():
    n = 5  # planes (0, 1) and (2, 3); coordinate 4 is fixed
    quarter = givens(n, 0, 1, math.pi / 2)
    assert torch.allclose(quarter[:, 0], torch.eye(n, dtype=torch.float64)[1])  # axis 0 turns onto axis 1
    rotations = torch.stack([quarter @ givens(n, 2, 3, -2.5), givens(n, 2, 3, 0.3), torch.eye(n, dtype=torch.float64)])
    angles = plane_angles(rotations)
    index = {tuple(p): k for k, p in enumerate(plane_pairs(n).tolist())}
    expected = torch.zeros(3, n_planes(n), dtype=torch.float64)
    expected[0, index[(0, 1)]] = math.pi / 2
    expected[0, index[(2, 3)]] = -2.5
    expected[1, index[(2, 3)]] = 0.3
    torch.testing.assert_close(angles, expected, atol=1e-12, rtol=0)


def test__plane_angles__zero_outside_the_diagonal_blocks_of_any_rotation():
    n = 4
    rotations = torch.stack([_orthogonal(n, seed) for seed in range(3)])
    angles = plane_angles(rotations)
    on_blocks = [k for k, (i, j) in enumerate(plane_pairs(n).tolist()) if i % 2 == 0 and j == i + 1]
    off_blocks = [k for k in range(n_planes(n)) if k not in on_blocks]
    assert torch.all(angles[:, off_blocks] == 0)
    assert torch.all(angles[:, on_blocks] != 0)
