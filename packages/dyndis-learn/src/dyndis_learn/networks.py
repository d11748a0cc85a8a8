"""Convolutional encoder and decoder for images of any size and 1 or 3 channels.

The default architecture is the original framework's: convolutions (32, 4, 2), (32, 4, 2), (64, 4, 2),
(64, 4, 2) with ReLU, a hidden fully connected layer of 256 units, and a mirrored decoder of transposed
convolutions. Layer sizes come from a dummy forward pass, never from constants, and the decoder's output
padding is chosen so that it reproduces every intermediate size of the encoder exactly, so odd sizes work.

Both networks take and give channels-last layouts, which is what the environments produce: images are
(B, H, W, C); inside, tensors are NCHW views in ``torch.channels_last`` memory format, which the CPU
convolution kernels run fastest on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from dyndis_learn.validation import check_int

__all__ = ["ENCODER_NORMS", "ConvDecoder", "ConvEncoder", "InstanceNorm", "conv_feature_shapes"]


#: Normalisations of the encoder's convolutions (:class:`ConvEncoder`'s ``norm``).
ENCODER_NORMS = ("none", "instance", "instance_after_first")


class InstanceNorm(nn.GroupNorm):
    """Normalises each image's channels over their positions, then scales and shifts them by learned weights.

    The function and the parameters of ``GroupNorm(channels, channels)`` (one group per channel), so state dicts
    of either load into the other. Channels-last float32 / float64 CPU tensors, the encoder's, are normalised in
    their own layout (:class:`_ChannelsLastInstanceNorm`): :func:`torch.nn.functional.instance_norm` would copy
    them to NCHW and back, forward and backward, and GroupNorm's channels-last kernel is slower still
    (docs/benchmarks/learn_throughput.md). Other tensors take :func:`~torch.nn.functional.instance_norm`.
    Statistics are always the image's own, in training and eval mode alike.

    Args:
        channels: Channels ``C`` of the (B, C, H, W) inputs.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape (B, C, H, W)."""
        if x.shape[-1] * x.shape[-2] == 1:  # instance_norm refuses one position; GroupNorm gives the bias there
            return super().forward(x)
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        if channels_last and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            return _ChannelsLastInstanceNorm.apply(x, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)
        y = F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        if channels_last:  # y is NCHW: the next layers run faster as x was
            y = y.contiguous(memory_format=torch.channels_last)
        return y


class _ChannelsLastInstanceNorm(torch.autograd.Function):
    """Instance norm of a channels-last (B, C, H, W) tensor, computed on its (B, H * W, C) view.

    Sums over the middle axis of that view run at memory speed where ``var_mean`` over it does not; the variance
    is taken from the centred values (two passes), as batch norm does. The backward is the closed form
    ``w * rstd * (g - mean(g) - x_hat * mean(g * x_hat))`` per image and channel. The gradients of the weight
    and bias sum over the images.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
        batch, channels, height, width = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(batch, height * width, channels)  # a view: x is channels-last
        mean = flat.mean(1, keepdim=True)  # (B, 1, C)
        centred = flat - mean
        rstd = centred.square().mean(1, keepdim=True).add_(eps).rsqrt_()
        y = torch.addcmul(bias.expand(batch, 1, channels), centred, rstd * weight)
        ctx.save_for_backward(x, mean, rstd, weight)  # x, not the centred values: one activation kept, not two
        return y.view(batch, height, width, channels).permute(0, 3, 1, 2)  # channels-last again

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        x, mean, rstd, weight = ctx.saved_tensors
        batch, channels, height, width = x.shape
        positions = height * width
        flat = x.permute(0, 2, 3, 1).reshape(batch, positions, channels)
        grad = grad.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(flat.shape)
        centred = flat - mean
        sum_grad = grad.sum(1, keepdim=True)  # (B, 1, C)
        sum_grad_centred = (grad * centred).sum(1, keepdim=True)
        scale = weight * rstd
        grad_x = torch.addcmul(
            scale * sum_grad / -positions, centred, scale * rstd.square() * sum_grad_centred / -positions
        ).addcmul_(grad, scale)
        grad_weight = (sum_grad_centred * rstd).sum((0, 1))
        grad_bias = sum_grad.sum((0, 1))
        return grad_x.view(batch, height, width, channels).permute(0, 3, 1, 2), grad_weight, grad_bias, None


def _conv_stack(
    in_channels: int, channels: Sequence[int], kernel_size: int, stride: int, norm: str = "none"
) -> nn.Sequential:
    layers: list[nn.Module] = []
    padding = max((kernel_size - stride) // 2, 0)  # halves even sizes exactly for the default (4, 2)
    for index, out_channels in enumerate(channels):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding))
        if norm == "instance" or (norm == "instance_after_first" and index > 0):  # per image, so train = eval
            layers.append(InstanceNorm(out_channels))
        layers.append(nn.ReLU())
        in_channels = out_channels
    return nn.Sequential(*layers)


def conv_feature_shapes(
    image_shape: Sequence[int], channels: Sequence[int], kernel_size: int, stride: int
) -> list[tuple[int, int, int]]:
    """(C, H, W) of the input and of every convolution's output, from a dummy forward pass.

    Args:
        image_shape: (H, W, C) of the images.
        channels: Output channels of each convolution.
        kernel_size: Kernel size of every convolution.
        stride: Stride of every convolution.

    Raises:
        ValueError: If the image is too small for that many strided convolutions.
    """
    height, width, in_channels = image_shape
    shapes = [(in_channels, height, width)]
    x = torch.zeros(1, in_channels, height, width)
    with torch.no_grad():
        for layer in _conv_stack(in_channels, channels, kernel_size, stride):
            if isinstance(layer, nn.Conv2d):
                if min(x.shape[-2:]) < kernel_size - 2 * layer.padding[0]:
                    raise ValueError(
                        f"Images of shape {tuple(image_shape)} are too small for "
                        f"{len(channels)} convolutions "
                        f"(kernel {kernel_size}, stride {stride}): use fewer `channels` or larger images."
                    )
                x = layer(x)
                shapes.append(tuple(x.shape[1:]))
    return shapes


def _check_architecture(image_shape: Sequence[int], latent_dim: int, channels: Sequence[int], hidden_dim: int) -> None:
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3) or min(image_shape[:2]) < 1:
        raise ValueError(f"`image_shape` must be (H, W, C) with C in (1, 3), got {tuple(image_shape)}.")
    if latent_dim < 1 or hidden_dim < 1:
        raise ValueError(f"`latent_dim` and `hidden_dim` must be >= 1, got {latent_dim} and {hidden_dim}.")
    if not channels or any(c < 1 for c in channels):
        raise ValueError(f"`channels` must be a non-empty sequence of positive integers, got {tuple(channels)}.")


class ConvEncoder(nn.Module):
    """Images -> unnormalised latent vectors.

    Args:
        image_shape: (H, W, C) of the images, C in (1, 3).
        latent_dim: Size ``n`` of the output vector.
        channels: Output channels of each strided convolution.
        kernel_size: Kernel size of the convolutions.
        stride: Stride of the convolutions.
        hidden_dim: Units of the hidden fully connected layer.
        norm: ``"none"`` (the original architecture), ``"instance"``: every convolution's output is
            normalised per image and channel over its positions (:class:`InstanceNorm`), or
            ``"instance_after_first"``: every one but the first's. Instance norm takes out most of what a
            whole-image change, such as a background colour, adds to every position (all of it away from the
            zero-padded borders), which otherwise swamps the gradients of small objects. On the first
            convolution it also divides out how strongly each filter sees the image's colours, so two objects
            of nearly the same colour (Cars3D's look-alike cars) look the same to the layers after it;
            ``"instance_after_first"`` leaves the first layer's outputs as they are.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        channels: Sequence[int] = (32, 32, 64, 64),
        kernel_size: int = 4,
        stride: int = 2,
        hidden_dim: int = 256,
        norm: str = "none",
    ) -> None:
        super().__init__()
        _check_architecture(image_shape, latent_dim, channels, hidden_dim)
        if norm not in ENCODER_NORMS:
            raise ValueError(f"`norm` must be one of {list(ENCODER_NORMS)}, got {norm!r}.")
        self.image_shape = tuple(image_shape)
        shapes = conv_feature_shapes(image_shape, channels, kernel_size, stride)
        flat = shapes[-1][0] * shapes[-1][1] * shapes[-1][2]
        self.convs = _conv_stack(image_shape[-1], channels, kernel_size, stride, norm)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, latent_dim)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode float images in [0, 1].

        Args:
            images: Shape (B, H, W, C).

        Returns:
            Shape (B, latent_dim).
        """
        x = images.permute(0, 3, 1, 2)  # NHWC memory seen as NCHW: exactly torch.channels_last
        return self.head(self.convs(x))


class ConvDecoder(nn.Module):
    """Latent vectors -> image logits, mirroring :class:`ConvEncoder` with transposed convolutions.

    Args:
        image_shape: (H, W, C) of the images to produce.
        latent_dim: Size ``n`` of the input vector.
        channels: The *encoder's* convolution channels (the decoder runs them in reverse).
        kernel_size: Kernel size of the transposed convolutions.
        stride: Stride of the transposed convolutions.
        hidden_dim: Units of the hidden fully connected layer.
        lookup_rows: Rows of a look-up table of first feature maps (0: none). :meth:`forward` adds weighted
            rows of it to the dense layers' first feature map, before its ReLU: an input that names one of
            many unrelated things (a bin of an angle) gets a whole feature map of its own, past the
            ``hidden_dim`` units that the dense layers squeeze every input through.
        lookup_modulation: With ``lookup_rows``: every row also scales and shifts the channels of each hidden
            transposed convolution's output, before its ReLU (FiLM, Perez et al. 2018), weighted as its feature
            map is. A bin's value then shapes the finer layers too, not only the coarse first map: Cars3D's
            look-alike cars, which differ by a few pixels of outline, are drawn apart far sooner. The table
            starts at zero, so an untrained modulation is the identity.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        channels: Sequence[int] = (32, 32, 64, 64),
        kernel_size: int = 4,
        stride: int = 2,
        hidden_dim: int = 256,
        lookup_rows: int = 0,
        lookup_modulation: bool = False,
    ) -> None:
        super().__init__()
        _check_architecture(image_shape, latent_dim, channels, hidden_dim)
        self.image_shape = tuple(image_shape)
        shapes = conv_feature_shapes(image_shape, channels, kernel_size, stride)
        self.feature_shape = shapes[-1]
        flat = shapes[-1][0] * shapes[-1][1] * shapes[-1][2]
        self.head = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, flat), nn.ReLU())
        self.lookup: nn.Embedding | None = None
        if check_int("lookup_rows", lookup_rows, minimum=0):
            self.lookup = nn.Embedding(lookup_rows, flat)
            # the scale of a linear layer's initial weights with one input per circle (a few rows are summed)
            nn.init.uniform_(self.lookup.weight, -1 / math.sqrt(lookup_rows), 1 / math.sqrt(lookup_rows))
        padding = max((kernel_size - stride) // 2, 0)
        layers: list[nn.Module] = []
        for (c_in, h_in, w_in), (c_out, h_out, w_out) in zip(shapes[:0:-1], shapes[-2::-1], strict=True):
            # Output padding that lands exactly on the encoder's size at this depth.
            extra = [
                target - ((size - 1) * stride - 2 * padding + kernel_size)
                for size, target in ((h_in, h_out), (w_in, w_out))
            ]
            layers += [
                nn.ConvTranspose2d(c_in, c_out, kernel_size, stride, padding, output_padding=tuple(extra)),
                nn.ReLU(),
            ]
        self.deconvs = nn.Sequential(*layers[:-1])  # no ReLU on the logits
        self.modulation: nn.Embedding | None = None
        if lookup_modulation and self.lookup is not None:  # a scale and a shift of each hidden output channel
            hidden_channels = sum(c for (c, _, _) in shapes[-2:0:-1])
            self.modulation = nn.Embedding(lookup_rows, 2 * hidden_channels)
            nn.init.zeros_(self.modulation.weight)

    def forward(self, latents: torch.Tensor, lookup: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Decode latent vectors to logits of Bernoulli pixel intensities.

        Args:
            latents: Shape (B, latent_dim).
            lookup: With ``lookup_rows``: row indices (long) and their weights, both of shape (B, K); the
                weighted sum of each sample's rows is added to its first feature map (and, with
                ``lookup_modulation``, the same weighted sum of the modulation's rows scales and shifts the
                hidden layers).

        Returns:
            Logits of shape (B, H, W, C) (a channels-last view; ``sigmoid`` gives intensities in [0, 1]).
        """
        if (lookup is None) != (self.lookup is None):
            raise ValueError("`lookup` must be given exactly when the decoder has `lookup_rows`.")
        x = self.head[:-1](latents)
        modulation = None
        if lookup is not None:
            indices, weights = lookup
            weights = weights.to(self.lookup.weight.dtype)  # an autocast leaves embedding_bag's tables float32
            x = x + F.embedding_bag(indices, self.lookup.weight, per_sample_weights=weights, mode="sum")
            if self.modulation is not None:
                modulation = F.embedding_bag(indices, self.modulation.weight, per_sample_weights=weights, mode="sum")
        x = torch.relu(x).view(-1, *self.feature_shape)
        x = x.contiguous(memory_format=torch.channels_last)
        if modulation is None:
            return self.deconvs(x).permute(0, 2, 3, 1)
        offset = 0
        for layer in self.deconvs:
            x = layer(x)
            if isinstance(layer, nn.ConvTranspose2d) and offset < modulation.shape[-1]:
                c = x.shape[1]
                scale = modulation[:, offset : offset + c, None, None]
                shift = modulation[:, offset + c : offset + 2 * c, None, None]
                # under an autocast x is bfloat16 and the rows float32: see _modulate_in_dtype
                x = x * (1 + scale) + shift if x.dtype == scale.dtype else _modulate_in_dtype(x, scale, shift)
                offset += 2 * c
        return x.permute(0, 2, 3, 1)


def _modulate_in_dtype(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` in ``x``'s dtype, for float32 rows under a (bfloat16) autocast.

    Float32 factors would promote ``x``, the layer's largest tensor, to float32, and the next convolution would
    cast it back: two copies of it forward and two backward. Written as ``x + x * scale`` so that ``scale`` is
    rounded at its own magnitude: ``1 + scale`` in bfloat16 keeps steps of 1/128, which would round look-alike
    bins' slightly different scales to the same value.
    """
    return torch.addcmul(x + shift.to(x.dtype), x, scale.to(x.dtype))
