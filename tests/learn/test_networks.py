import re

import pytest
import torch

from dyndis_learn.networks import ConvDecoder, ConvEncoder


@pytest.mark.parametrize("image_shape", [(64, 64, 3), (16, 16, 1), (33, 21, 3), (48, 64, 1)])
def test__encoder_decoder__any_size_and_channels(image_shape):
    encoder = ConvEncoder(image_shape, 5, channels=(8, 8, 16))
    decoder = ConvDecoder(image_shape, 5, channels=(8, 8, 16))
    images = torch.rand(3, *image_shape)
    latents = encoder(images)
    assert latents.shape == (3, 5)
    assert decoder(latents).shape == (3, *image_shape)


def test__encoder__too_small_image():
    message = "Images of shape (8, 8, 3) are too small for 4 convolutions (kernel 4, stride 2)"
    with pytest.raises(ValueError, match=re.escape(message)):
        ConvEncoder((8, 8, 3), 4)


def test__encoder__bad_channels_in_image_shape():
    with pytest.raises(
        ValueError, match=re.escape("`image_shape` must be (H, W, C) with C in (1, 3), got (16, 16, 4).")
    ):
        ConvEncoder((16, 16, 4), 4)
