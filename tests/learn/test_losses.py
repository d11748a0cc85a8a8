import math

import torch

from dyndis_learn.losses import latent_consistency, uniformity
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
    rotated = latent_consistency(
        encodings @ basis.T, basis @ wrong @ basis.T, basis @ wrong_paths @ basis.T, 0.5
    )
    assert value.item() > 1e-3
    torch.testing.assert_close(rotated, value)


def test__uniformity__closed_form_for_two_antipodal_points():
    points = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    # one pair at squared distance 4: log exp(-t * 4)
    assert uniformity(points, 2.0).item() == torch.tensor(-8.0).item()
