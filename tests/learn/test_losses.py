import math

import pytest
import torch

from dyndis_learn.losses import latent_consistency, transition_smoothness, uniformity, whitening_penalty
from dyndis_learn.rotations import cumulative_rotations, givens_product


def _episode(angle: float, steps: int = 6):
    """Encodings that a rotation by `angle` in plane (0, 1) maps exactly onto each other."""
    rotation = givens_product(torch.tensor([angle, 0.0, 0.0, 0.0, 0.0, 0.0]), 4)
    step_matrices = rotation.expand(1, steps, 4, 4)
    paths = cumulative_rotations(step_matrices)
    start = torch.tensor([0.6, 0.0, 0.8, 0.0])
    return (paths @ start).unsqueeze(0)[0], step_matrices, paths


def test__consistency__zero_for_equivariant_encodings():
    encodings, steps, paths = _episode(2 * math.pi / 5)
    assert latent_consistency(encodings, steps, paths, multistep_weight=1.0).item() < 1e-10


def test__consistency__invariant_to_a_rotation_of_the_latent_basis():
    encodings, steps, _ = _episode(0.4)
    wrong = steps @ givens_product(torch.tensor([0.1, 0.2, 0.0, 0.0, 0.0, 0.3]), 4)  # a wrong action model
    basis = givens_product(torch.tensor([0.3, -1.0, 0.2, 0.5, 0.1, 0.7]), 4)
    wrong_paths = cumulative_rotations(wrong)
    value = latent_consistency(encodings, wrong, wrong_paths, 0.5)
    rotated = latent_consistency(encodings @ basis.T, basis @ wrong @ basis.T, basis @ wrong_paths @ basis.T, 0.5)
    assert value.item() > 1e-3
    torch.testing.assert_close(rotated, value)


def test__uniformity__closed_form_for_two_antipodal_points():
    points = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    # one pair at squared distance 4: log exp(-t * 4)
    assert uniformity(points, 2.0).item() == torch.tensor(-8.0).item()


def _clifford_torus(size: int) -> torch.Tensor:
    """``(cos a, sin a, cos b, sin b) / sqrt 2`` on the full grid of ``size`` x ``size`` angles, (size, size, 4)."""
    angles = torch.arange(size, dtype=torch.float64) * 2 * math.pi / size
    a, b = torch.meshgrid(angles, angles, indexing="ij")
    return torch.stack([a.cos(), a.sin(), b.cos(), b.sin()], dim=-1) / math.sqrt(2)


def test__smoothness__closed_form_for_steps_along_circles():
    angles = torch.tensor([0.3, 1.1], dtype=torch.float64)  # one episode per step angle
    t = torch.arange(6, dtype=torch.float64)
    encodings = torch.stack([(angles[:, None] * t).cos(), (angles[:, None] * t).sin()], dim=-1)  # (2, 6, 2)
    # ||e_t - e_(t-1)||^2 = 2 - 2 cos(step angle), averaged over both episodes
    expected = (2 - 2 * angles.cos()).mean()
    torch.testing.assert_close(transition_smoothness(encodings), expected)


def test__smoothness__pairs_frames_within_episodes_only():
    still = torch.eye(3, dtype=torch.float64)[:, None].expand(3, 5, 3)  # 3 episodes, each at one point
    assert transition_smoothness(still).item() == 0.0


@pytest.mark.parametrize("size", [3, 5, 8])
def test__whitening__zero_on_a_clifford_torus_and_one_for_a_collapse(size):
    torus = _clifford_torus(size)
    assert whitening_penalty(torus).item() < 1e-12
    collapsed = torch.tensor([0.6, 0.0, 0.8, 0.0], dtype=torch.float64).expand(10, 4)
    assert whitening_penalty(collapsed).item() == pytest.approx(1.0)


def test__whitening__closed_form_for_a_circle_in_four_dimensions():
    # (cos a, sin a, 0, 0): n C = diag(2, 2, 0, 0), so ||n C - I||^2 / n = 4 / 4
    circle = _clifford_torus(6)[:, 0] * math.sqrt(2)
    circle[:, 2:] = 0
    assert whitening_penalty(circle).item() == pytest.approx(1.0)


def test__whitening__penalises_a_mean():
    # e_0 and e_1, half each: the second moment is I / 2 (white), but the mean (1, 1) / 2 leaves
    # n C = [[1, -1], [-1, 1]] / 2, so ||n C - I||^2 / n = (4 / 4) / 2
    points = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).repeat(3, 1)
    assert whitening_penalty(points).item() == pytest.approx(0.5)


def test__whitening__invariant_to_a_rotation_of_the_basis():
    tilted = _clifford_torus(5) + torch.tensor([0.3, 0.0, 0.1, 0.0], dtype=torch.float64)
    tilted = tilted / tilted.norm(dim=-1, keepdim=True)
    basis = givens_product(torch.tensor([0.3, -1.0, 0.2, 0.5, 0.1, 0.7], dtype=torch.float64), 4)
    value = whitening_penalty(tilted)
    assert value.item() > 1e-3
    torch.testing.assert_close(whitening_penalty(tilted @ basis.T), value)
