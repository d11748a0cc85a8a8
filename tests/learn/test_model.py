import re

import pytest
import torch

from dyndis_learn.model import WorldModel
from dyndis_learn.rotations import givens_product


def _model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel((16, 16, 3), 4, latent_dim=4, channels=(8, 8), hidden_dim=32)


def _frames() -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test__rotate_latent_basis__same_images_and_encodings_in_the_new_coordinates():
    model, frames = _model(), _frames()
    basis = givens_product(torch.tensor([0.3, -1.0, 0.2, 0.5, 0.1, 0.7]), 4)
    with torch.no_grad():
        encodings, images = model.encode(frames), model.decode(model.encode(frames))
        model.rotate_latent_basis(basis)
        turned = model.encode(frames)
        torch.testing.assert_close(turned, encodings @ basis)  # row vectors: (basis^T e)^T = e^T basis
        assert not torch.allclose(turned, encodings, atol=1e-3)
        assert torch.allclose(model.decode(turned), images, atol=1e-6)


def test__rotate_latent_basis__leaves_the_action_angles_alone():
    model = _model()
    angles = model.rotations.angles.detach().clone()
    model.rotate_latent_basis(givens_product(torch.tensor([0.3, -1.0, 0.2, 0.5, 0.1, 0.7]), 4))
    assert torch.equal(model.rotations.angles, angles)


def test__rotate_latent_basis__wrong_shape():
    with pytest.raises(ValueError, match=re.escape("`basis` must have shape (4, 4), got (3, 3).")):
        _model().rotate_latent_basis(torch.eye(3))
