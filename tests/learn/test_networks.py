import re

import pytest
import torch

from dyndis_learn.networks import ConvDecoder, ConvEncoder, InstanceNorm


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


def test__instance_norm__normalises_each_image_and_channel_on_its_own():
    encoder = ConvEncoder((16, 16, 3), 4, channels=(8, 8), norm="instance")
    images = torch.rand(2, 16, 16, 3)
    images[1] += 0.4  # a brighter background
    x = images.permute(0, 3, 1, 2)
    for layer in encoder.convs:
        x = layer(x)
        if isinstance(layer, torch.nn.GroupNorm):  # affine starts at the identity
            torch.testing.assert_close(x.mean((2, 3)), torch.zeros(2, 8), atol=1e-5, rtol=0)
            torch.testing.assert_close(x.std((2, 3), unbiased=False), torch.ones(2, 8), atol=1e-3, rtol=0)
    assert sum(isinstance(layer, torch.nn.GroupNorm) for layer in encoder.convs) == 2
    # per image: an encoding does not depend on the rest of the batch, in training as in eval mode
    torch.testing.assert_close(encoder(images[:1]), encoder(images)[:1])


@pytest.mark.parametrize("positions", [(9, 7), (1, 1)])
def test__instance_norm__is_groupnorm_with_a_group_per_channel(positions):
    torch.manual_seed(0)
    norm, reference = InstanceNorm(6), torch.nn.GroupNorm(6, 6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0), norm.bias.uniform_(-1.0, 1.0)
    reference.load_state_dict(norm.state_dict())
    x = (3 * torch.randn(4, 6, *positions) + 2).contiguous(memory_format=torch.channels_last)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(4, 6, *positions)
    (norm(ours) * weights).sum().backward()
    (reference(theirs) * weights).sum().backward()
    torch.testing.assert_close(norm(x), reference(x))
    assert norm(x).is_contiguous(memory_format=torch.channels_last)  # as its input: the next layers' fast layout
    torch.testing.assert_close(ours.grad, theirs.grad)
    torch.testing.assert_close(norm.weight.grad, reference.weight.grad)
    torch.testing.assert_close(norm.bias.grad, reference.bias.grad)
    norm.eval()  # the image's own statistics in eval mode too
    torch.testing.assert_close(norm(x), reference(x))


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test__instance_norm__gradients_are_exact_in_either_layout(layout):
    # float64: gradcheck compares the backward with finite differences of the forward
    torch.manual_seed(0)
    norm = InstanceNorm(3).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0), norm.bias.uniform_(-1.0, 1.0)
    x = (3 * torch.randn(2, 3, 4, 5, dtype=torch.float64) + 1).contiguous(memory_format=layout).requires_grad_()
    assert torch.autograd.gradcheck(norm, (x,))
    y = norm(x)
    assert y.is_contiguous(memory_format=layout)
    # an NCHW gradient into a channels-last output (a later layer's choice) gives the same gradients
    weights = torch.randn(y.shape, dtype=torch.float64)
    (first,) = torch.autograd.grad((y * weights).sum(), x, retain_graph=True)
    (second,) = torch.autograd.grad(y, x, weights.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(first, second)


def test__instance_norm_after_first__keeps_the_first_convolutions_colour_magnitudes():
    torch.manual_seed(0)
    encoder = ConvEncoder((16, 16, 3), 4, channels=(8, 8, 8), norm="instance_after_first")
    assert [type(layer) for layer in encoder.convs] == [
        torch.nn.Conv2d,
        torch.nn.ReLU,
        *[torch.nn.Conv2d, InstanceNorm, torch.nn.ReLU] * 2,
    ]
    # two flat images of nearly the same colour: their first-layer features differ by what the filters see of it
    pale, paler = torch.full((1, 16, 16, 3), 0.50), torch.full((1, 16, 16, 3), 0.55)
    features = [encoder.convs[:2](image.permute(0, 3, 1, 2)) for image in (pale, paler)]
    assert (features[0] - features[1]).abs().max() > 0.01
    # per image: an encoding does not depend on the rest of the batch
    torch.testing.assert_close(encoder(pale), encoder(pale.expand(3, -1, -1, -1))[:1])


def test__encoder__bad_norm():
    message = "`norm` must be one of ['none', 'instance', 'instance_after_first'], got 'batch'."
    with pytest.raises(ValueError, match=re.escape(message)):
        ConvEncoder((16, 16, 3), 4, norm="batch")


def test__decoder_lookup__is_given_exactly_when_the_decoder_has_a_table():
    plain = ConvDecoder((16, 16, 3), 4, channels=(8, 8), hidden_dim=16)
    table = ConvDecoder((16, 16, 3), 4, channels=(8, 8), hidden_dim=16, lookup_rows=6)
    rows = (torch.tensor([[0, 5]]), torch.tensor([[0.5, 0.5]]))
    assert table(torch.zeros(1, 4), rows).shape == (1, 16, 16, 3)
    message = "`lookup` must be given exactly when the decoder has `lookup_rows`."
    with pytest.raises(ValueError, match=re.escape(message)):
        plain(torch.zeros(1, 4), rows)
    with pytest.raises(ValueError, match=re.escape(message)):
        table(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="lookup_rows"):
        ConvDecoder((16, 16, 3), 4, channels=(8, 8), hidden_dim=16, lookup_rows=-1)
