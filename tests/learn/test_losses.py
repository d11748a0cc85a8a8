import math

import pytest
import torch

from dyndis_learn.losses import (
    frame_bce,
    latent_consistency,
    neighbour_margin,
    transition_smoothness,
    uniformity,
    whitening_penalty,
)
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


def _logits(pictures: torch.Tensor) -> torch.Tensor:
    return torch.logit(pictures.clamp(1e-6, 1 - 1e-6))


def test__neighbour_margin__zero_for_perfect_pictures_and_closed_form_for_a_blur():
    random = torch.rand(2, 4, 3, 5, 3)  # B = 2 episodes of T = 3 steps
    assert neighbour_margin(_logits(random), random).item() == pytest.approx(0.0, abs=1e-4)
    # frames of one grey level each, 0.1 apart; every picture but the last halfway to the next frame: against
    # that neighbour m = 0 (short of the margin 0.5 by 0.5), against the previous one m = 2; the last is exact
    frames = (0.2 + 0.1 * torch.arange(4.0)).view(1, 4, 1, 1, 1).expand(2, 4, 3, 5, 3)
    halfway = frames.clone()
    halfway[:, :-1] = (frames[:, :-1] + frames[:, 1:]) / 2
    expected = 0.5 * 6 / 12  # 12 pairs (2 episodes x 3 steps x 2 directions), 6 of them "ahead" of a blur
    assert neighbour_margin(_logits(halfway), frames).item() == pytest.approx(expected, abs=1e-3)
    assert neighbour_margin(_logits(halfway), frames, margin=0.0).item() == pytest.approx(0.0, abs=1e-3)


def test__neighbour_margin__counts_a_small_difference_as_much_as_a_large_one():
    frames = torch.zeros(1, 2, 8, 8, 3)
    frames[0, 1, 0, 0, 0] = 1.0  # one pixel differs between the two frames
    blurred = frames.clone()
    blurred[:, :, 0, 0, 0] = 0.5  # both pictures halfway: as near the neighbour as their own image
    big = torch.zeros(1, 2, 8, 8, 3)
    big[0, 1] = 1.0  # every pixel differs
    big_blurred = torch.full_like(big, 0.5)
    small_term = neighbour_margin(_logits(blurred), frames).item()
    assert small_term == pytest.approx(0.5, abs=1e-3)  # m = 0 for both pairs
    assert neighbour_margin(_logits(big_blurred), big).item() == pytest.approx(small_term, abs=1e-3)
    # BCE, by contrast, hardly sees the one-pixel blur
    bce_small = frame_bce(_logits(blurred), frames) - frame_bce(_logits(frames), frames)
    assert bce_small.max().item() < 0.01


def test__neighbour_margin__leaves_out_identical_neighbours_and_its_gradient_points_home():
    frames = torch.rand(1, 3, 4, 4, 3)
    frames[0, 2] = frames[0, 1]  # a step that changed nothing: no pair
    halfway = frames.clone()
    halfway[0, 0] = (frames[0, 0] + frames[0, 1]) / 2
    logits = _logits(halfway).requires_grad_()
    value = neighbour_margin(logits, frames)
    assert value.item() == pytest.approx(0.5 / 2, abs=1e-3)  # one pair of the two that differ falls short
    value.backward()
    toward_own = (frames[0, 0] - halfway[0, 0]).flatten()
    assert torch.dot(-logits.grad[0, 0].flatten(), toward_own) > 0  # descent moves the picture home
    assert logits.grad[0, 1:].abs().max() == 0  # the exact pictures are left alone
