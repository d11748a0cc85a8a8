"""The spherical-latent world model: encode onto S^(n-1), rotate by actions, decode.

``encode`` maps an image to a unit vector (on the sphere, or on its Clifford torus: every coordinate pair a
circle of the same radius); every action is a learnt rotation (see
:mod:`dyndis_learn.rotations`); ``decode`` maps any point of the sphere back to pixel intensities. A latent
rollout from an image ``x_0`` and actions ``a_1 .. a_T`` is ``z_t = R(a_t) ... R(a_1) enc(x_0)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dyndis_learn.losses import frame_bce
from dyndis_learn.networks import ConvDecoder, ConvEncoder
from dyndis_learn.rotations import ActionRotations, Parametrisation, cumulative_rotations
from dyndis_learn.validation import check_int

__all__ = [
    "DEFAULT_SYNTHESIS_MODES",
    "LATENT_MANIFOLDS",
    "MODE_WINDOW",
    "SYNTHESIS_CONFIDENCE",
    "WorldModel",
    "angle_bin_neighbours",
    "angle_bin_weights",
    "encode_checked",
    "encode_frames",
    "frames_to_float",
    "synthesis_modes_for",
]

#: Where encodings live (:class:`WorldModel`'s ``latent_manifold``).
LATENT_MANIFOLDS = ("sphere", "torus")


def frames_to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1], same shape (floats pass through unchanged)."""
    if frames.dtype == torch.uint8:
        return frames.to(torch.float32).mul_(1.0 / 255.0)
    return frames


def encode_frames(encoder: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """Run an image encoder over frames of any leading shape: uint8 or float (..., H, W, C) -> (..., out)."""
    batch = frames.shape[:-3]
    out = encoder(frames_to_float(frames.reshape(-1, *frames.shape[-3:])))
    return out.reshape(*batch, out.shape[-1])


#: Bins on either side of the most probable one that an angle-bin model's encoding averages over: enough for a
#: target between two bins, and narrow (the next of Cars3D's cars is 8 of ``angle_bins="cycles"``' 1,464 away).
MODE_WINDOW = 1

#: Modes per circle that the decoder chooses among in an angle-bin model's decoder-checked encodings
#: (:meth:`WorldModel.encode_by_synthesis`) where a caller asks for ``"auto"``: on Cars3D's unseen states the
#: decoder finds the right car among 8 nearly as often as among 16 or 32 (docs/benchmarks/learn_structure.md).
DEFAULT_SYNTHESIS_MODES = 8

#: Share of a circle's probability at and beside its most probable bin from which the encoder's point is kept
#: unchecked. On Cars3D the decoder then checks one circle in 13 of the seen states' and one in 4 of the unseen
#: ones'; it leaves fewer cars wrong than checking every circle, which turns some right ones into look-alikes.
SYNTHESIS_CONFIDENCE = 0.999

_SYNTHESIS_DECODES = 512  # candidate pictures decoded at once by encode_by_synthesis

#: Angle bins: ``M`` for every circle, or each circle's own number ``M_k``.
Bins = int | tuple[int, ...]


def angle_bin_weights(latents: torch.Tensor, bins: Bins) -> torch.Tensor:
    """Each circle's angle as weights of its bins' angles ``2 pi m / M``, interpolated between the two nearest.

    On a bin's own angle the weight is 1 there and 0 elsewhere, so a linear layer on the weights is a look-up
    table of one learned vector per bin, interpolated linearly between bins.

    Args:
        latents: Shape (..., n), ``n`` even: circles ``(2k, 2k + 1)``.
        bins: Number of angles ``M`` of every circle, or each circle's own ``M_k`` (one per circle).

    Returns:
        Shape (..., n / 2, M), ``M`` the most bins of a circle (a circle's entries past its own ``M_k`` are 0);
        each row sums to 1.
    """
    if isinstance(bins, int):
        position = _bin_positions(latents, bins)
        offsets = torch.arange(bins, device=latents.device, dtype=latents.dtype)
        return torch.relu(1 - _bins_apart(position.unsqueeze(-1), offsets, bins).abs())
    own = latents.new_tensor(bins)  # (n / 2,)
    position = _bin_positions(latents, own)
    offsets = torch.arange(max(bins), device=latents.device, dtype=latents.dtype)
    own = own.unsqueeze(-1)
    return torch.relu(1 - _bins_apart(position.unsqueeze(-1), offsets, own).abs()) * (offsets < own)


def angle_bin_neighbours(latents: torch.Tensor, bins: Bins) -> tuple[torch.Tensor, torch.Tensor]:
    """The nonzero entries of :func:`angle_bin_weights`: each circle's two nearest bins and their weights.

    Args:
        latents: Shape (..., n), ``n`` even: circles ``(2k, 2k + 1)``.
        bins: Number of angles ``M`` of every circle, or each circle's own ``M_k`` (one per circle).

    Returns:
        Bin indices in ``[0, M_k)`` (long) and their weights, both of shape (..., n / 2, 2); the weights sum to 1.
    """
    position = _bin_positions(latents, bins if isinstance(bins, int) else latents.new_tensor(bins))
    below = torch.floor(position)
    above_weight = position - below
    own = bins if isinstance(bins, int) else torch.tensor(bins, device=latents.device).unsqueeze(-1)
    indices = torch.stack([below, below + 1], dim=-1).long().remainder(own)
    return indices, torch.stack([1 - above_weight, above_weight], dim=-1)


def _bin_positions(latents: torch.Tensor, bins: int | torch.Tensor) -> torch.Tensor:
    """Each circle's angle in its bins, in ``(-M_k/2, M_k/2]``: latents (..., n) -> (..., n / 2).

    ``bins``: ``M`` for every circle, or each circle's ``M_k`` as a tensor of shape (n / 2,).
    """
    pairs = latents.unflatten(-1, (-1, 2))
    return torch.atan2(pairs[..., 1], pairs[..., 0]) * (bins / (2 * math.pi))


def _bins_apart(a: torch.Tensor, b: torch.Tensor, bins: int | torch.Tensor) -> torch.Tensor:
    """``a - b`` in bins, wrapped around the circle of ``bins`` bins into ``[-bins / 2, bins / 2)``."""
    return torch.remainder(a - b + bins / 2, bins) - bins / 2


def _circle_bins(angle_bins: int | Sequence[int], circles: int) -> tuple[int, ...]:
    """``angle_bins`` checked, as one number of bins per circle."""
    if isinstance(angle_bins, int) or not isinstance(angle_bins, Sequence):
        return (check_int("angle_bins", angle_bins, minimum=2),) * circles
    if len(angle_bins) != circles:
        raise ValueError(
            f"`angle_bins` must give one number of bins per circle ({circles} for latent_dim {2 * circles}), "
            f"got {len(angle_bins)}: {list(angle_bins)!r}."
        )
    return tuple(check_int(f"angle_bins[{k}]", m, minimum=2) for k, m in enumerate(angle_bins))


class WorldModel(nn.Module):
    """Encoder, decoder and one rotation per action.

    Args:
        image_shape: (H, W, C) of the observations, C in (1, 3).
        n_actions: Number of discrete actions.
        latent_dim: Dimension ``n``; latents live on the unit sphere S^(n-1).
        channels: Encoder convolution channels (the decoder mirrors them).
        kernel_size: Convolution kernel size.
        stride: Convolution stride.
        hidden_dim: Units of the hidden fully connected layers.
        parametrisation: ``"givens"`` or ``"exp"`` (see :class:`~dyndis_learn.rotations.ActionRotations`).
        angle_init_scale: Initial angles are uniform in ``[-angle_init_scale, angle_init_scale]``.
        encoder_norm: One of :data:`~dyndis_learn.networks.ENCODER_NORMS` (:class:`~dyndis_learn.networks.ConvEncoder`).
        latent_manifold: ``"sphere"``: the encoder's output divided by its norm; ``"torus"``: each coordinate
            pair ``(2k, 2k + 1)`` divided by its own norm and scaled to ``1 / sqrt(n / 2)``, so the encoding is
            a point of ``n / 2`` circles, still of unit norm. A factor that lives on a circle then has one
            that cannot shrink: a rotation in its plane moves it, and no encoder can fold it away
            (the cycles warm-up, :class:`~dyndis_learn.warmups.CycleWarmup`, needs it). Needs an even ``n``.
        angle_bins: None, or ``M`` (torus only): the encoder gives logits of ``M`` angles ``2 pi m / M`` per
            circle, and the circle's point is the circular mean of their softmax over the most probable bin and
            its :data:`MODE_WINDOW` neighbours on either side (:meth:`angle_logits`, :meth:`angle_cross_entropy`);
            the decoder reads each circle's angle as well as the coordinates, through ``M`` learned embeddings
            interpolated between the two nearest angles
            (:func:`angle_bin_weights`; the gradient reaches the latent through the coordinates only). A
            factor of many values whose images are unrelated (Cars3D's cars) is then a classification for the
            encoder and a table look-up for the decoder. One number per circle gives circle ``k`` its own
            ``M_k`` bins (so a circle of 4 values need not have as many as one of 183).
        lookup_feature_map: With ``angle_bins``: each bin also has a whole first feature map of the decoder's
            (:class:`~dyndis_learn.networks.ConvDecoder`'s ``lookup_rows``), added past its dense layers, whose
            ``hidden_dim`` units every bin's embedding otherwise squeezes through. No effect without bins.
        lookup_modulation: With ``lookup_feature_map``: each bin also scales and shifts the channels of every
            hidden layer of the decoder's (:class:`~dyndis_learn.networks.ConvDecoder`'s ``lookup_modulation``).
            No effect without the feature maps.
        generator: Optional generator for the initial angles (the networks use torch's global RNG).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        n_actions: int,
        latent_dim: int = 4,
        channels: Sequence[int] = (32, 32, 64, 64),
        kernel_size: int = 4,
        stride: int = 2,
        hidden_dim: int = 256,
        parametrisation: Parametrisation | str = Parametrisation.GIVENS,
        angle_init_scale: float = 0.01,
        encoder_norm: str = "none",
        latent_manifold: str = "sphere",
        angle_bins: int | Sequence[int] | None = None,
        lookup_feature_map: bool = False,
        lookup_modulation: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if latent_manifold not in LATENT_MANIFOLDS:
            raise ValueError(f"`latent_manifold` must be one of {list(LATENT_MANIFOLDS)}, got {latent_manifold!r}.")
        if latent_manifold == "torus" and latent_dim % 2:
            raise ValueError(
                f"`latent_dim` must be even for latent_manifold='torus' (pairs of coordinates), got {latent_dim}."
            )
        circles = latent_dim // 2
        circle_bins = None
        if angle_bins is not None:
            if latent_manifold != "torus":
                raise ValueError(f"`angle_bins` needs latent_manifold='torus', got {latent_manifold!r}.")
            circle_bins = _circle_bins(angle_bins, circles)
            angle_bins = angle_bins if isinstance(angle_bins, int) else circle_bins
        self.latent_manifold = latent_manifold
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = latent_dim
        self.angle_bins = angle_bins
        outputs, inputs, lookup_rows = latent_dim, latent_dim, 0
        if circle_bins is not None:
            # Each circle's bins: one number for all where they agree (the faster path), else one per circle.
            self.bins: Bins = circle_bins[0] if len(set(circle_bins)) == 1 else circle_bins
            self.max_bins = max(circle_bins)
            # The encoder gives every circle ``max_bins`` logits (a shorter circle's last ones masked away:
            # angle_logits); the decoder reads each circle's own bins' weights, and its look-up has their rows.
            outputs, inputs = circles * self.max_bins, latent_dim + sum(circle_bins)
            self._register_bins(circle_bins)
        self.encoder = ConvEncoder(image_shape, outputs, channels, kernel_size, stride, hidden_dim, encoder_norm)
        self.lookup_feature_map = bool(lookup_feature_map and angle_bins is not None)
        if self.lookup_feature_map:
            lookup_rows = sum(circle_bins)
        self.lookup_modulation = bool(lookup_modulation and self.lookup_feature_map)
        self.decoder = ConvDecoder(
            image_shape, inputs, channels, kernel_size, stride, hidden_dim, lookup_rows, self.lookup_modulation
        )
        self.rotations = ActionRotations(n_actions, latent_dim, parametrisation, angle_init_scale, generator)
        self.to(memory_format=torch.channels_last)  # fastest CPU convolutions; see networks.py

    def _register_bins(self, circle_bins: tuple[int, ...]) -> None:
        """Buffers of the bins' points, the look-up's first row of each circle and (bins per circle) the mask."""
        first_rows = torch.tensor((0, *circle_bins[:-1])).cumsum(0)
        self.register_buffer("lookup_first_rows", first_rows.unsqueeze(-1), persistent=False)
        if isinstance(self.bins, int):
            bins = torch.arange(self.bins, dtype=torch.float32) * (2 * math.pi / self.bins)
            self.register_buffer("bin_points", torch.stack([bins.cos(), bins.sin()], dim=-1), persistent=False)
            return
        offsets = torch.arange(self.max_bins, dtype=torch.float32)
        own = torch.tensor(circle_bins, dtype=torch.float32).unsqueeze(-1)
        valid = offsets < own  # (circles, M)
        angles = offsets * (2 * math.pi / own)
        points = torch.stack([angles.cos(), angles.sin()], dim=-1) * valid.unsqueeze(-1)
        self.register_buffer("bin_points", points, persistent=False)  # (circles, M, 2)
        self.register_buffer("bin_valid", valid, persistent=False)
        self.register_buffer("bin_counts", own.long(), persistent=False)  # (circles, 1)
        self.register_buffer("bin_inputs", valid.flatten().nonzero().squeeze(-1), persistent=False)

    def _bin_means(self, weights: torch.Tensor) -> torch.Tensor:
        """Weights of every circle's bins (..., circles, M) -> the weighted sums of their points (..., circles, 2)."""
        points = self.bin_points.to(weights.dtype)
        if isinstance(self.bins, int):
            return weights @ points
        return (weights.unsqueeze(-2) @ points).squeeze(-2)

    def _bin_count(self) -> int | torch.Tensor:
        """Bins per circle, as the wrap-around of index arithmetic on (..., circles, M) wants it."""
        return self.bins if isinstance(self.bins, int) else self.bin_counts

    @property
    def n_actions(self) -> int:
        """Number of discrete actions."""
        return self.rotations.n_actions

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Images -> points on the unit sphere (on its torus for ``latent_manifold="torus"``).

        Args:
            frames: uint8 or float images of shape (..., H, W, C).

        Returns:
            Unit vectors of shape (..., n).
        """
        return self.latents(encode_frames(self.encoder, frames))

    def latents(self, outputs: torch.Tensor) -> torch.Tensor:
        """The encoder's outputs (..., m) -> points on the sphere or torus (..., n) (what :meth:`encode` returns)."""
        circles = self.latent_dim // 2
        if self.angle_bins is not None:
            # The mode: the circular mean of the most probable bin and its neighbours only. A mean over every bin
            # falls between the values an encoder hesitates between (two unrelated cars), where the most probable
            # bin was right in 94% of Cars3D's seen states against 67% (docs/benchmarks/learn_structure.md).
            logits = self.angle_logits(outputs)  # (..., circles, M)
            offsets = torch.arange(self.max_bins, device=logits.device)
            near = _bins_apart(offsets, logits.argmax(dim=-1, keepdim=True), self._bin_count()).abs() <= MODE_WINDOW
            means = self._bin_means(logits.softmax(dim=-1) * near)
            return (F.normalize(means, dim=-1) * circles**-0.5).flatten(-2)
        if self.latent_manifold == "torus":
            points = F.normalize(outputs.unflatten(-1, (circles, 2)), dim=-1) * circles**-0.5
            return points.flatten(-2)
        return F.normalize(outputs, dim=-1)

    @torch.no_grad()
    def encode_by_synthesis(
        self,
        frames: torch.Tensor,
        modes: int = DEFAULT_SYNTHESIS_MODES,
        confidence: float | None = SYNTHESIS_CONFIDENCE,
    ) -> torch.Tensor:
        """Encodings the decoder checks: of the points the encoder finds likely, the one that best explains the frame.

        An angle-bin encoder gives every circle a distribution over its angles; where it hesitates (Cars3D's car
        on a view its walk never saw), the right value is often its second or third mode. Circle by circle,
        where the encoder's mode holds less than ``confidence`` of the circle's probability, each of its
        ``modes`` most probable modes (local maxima of the logits, each the circular mean of its
        :data:`MODE_WINDOW` neighbourhood, as in :meth:`latents`) replaces that circle's point, the other
        circles kept at their choice so far, and the one under whose decoded picture the frame is most likely is
        kept: the least binary cross-entropy of the frame's intensities against the decoder's logits, the loss the
        decoder is trained with (docs/benchmarks/learn_structure.md compares it with the squared error of
        intensities, used before). Costs ``modes`` decodes per hesitant circle.

        Args:
            frames: uint8 or float images of shape (B, H, W, C).
            modes: Candidate modes per circle; 1 gives :meth:`encode`.
            confidence: A circle whose mode (its bin and the :data:`MODE_WINDOW` bins beside it) holds at least
                this share of the probability keeps the encoder's point, in (0, 1]; None checks every circle.

        Returns:
            Points of the torus, shape (B, n).

        Raises:
            ValueError: For a model without ``angle_bins``, ``modes`` below 1 or ``confidence`` outside (0, 1].
        """
        if self.angle_bins is None:
            raise ValueError("encode_by_synthesis needs a model with `angle_bins` (modes of each circle's angle).")
        check_int("modes", modes, minimum=1)
        if confidence is not None and not (isinstance(confidence, (int, float)) and 0 < confidence <= 1):
            raise ValueError(f"`confidence` must be a share in (0, 1] or None, got {confidence!r}.")
        images = frames_to_float(frames)
        outputs = encode_frames(self.encoder, images)
        return self.latents(outputs) if modes == 1 else self.checked_latents(outputs, images, modes, confidence)

    @torch.no_grad()
    def checked_latents(
        self, outputs: torch.Tensor, images: torch.Tensor, modes: int, confidence: float | None = SYNTHESIS_CONFIDENCE
    ) -> torch.Tensor:
        """:meth:`encode_by_synthesis` from the encoder's outputs (B, m) of float ``images`` (B, H, W, C) -> (B, n).

        For a caller that needs :meth:`latents` of the same outputs too (the encoder's own encodings beside the
        checked ones) without a second pass of the encoder; the arguments are not checked here.
        """
        logits = self.angle_logits(outputs)  # (B, circles, M)
        bins, circles = self._bin_count(), self.latent_dim // 2
        window = torch.arange(-MODE_WINDOW, MODE_WINDOW + 1, device=logits.device)
        # local maxima of each circle's logits, best first
        wrap = bins if isinstance(bins, int) else bins.unsqueeze(-1)  # each circle's own wrap-around: (circles, 1, 1)
        around = torch.arange(self.max_bins, device=logits.device)[:, None] + window  # (M, 2w + 1)
        circle = torch.arange(circles, device=logits.device)[:, None, None]
        neighbours = logits[:, circle, around.remainder(wrap)]  # (B, circles, M, 2w + 1)
        peaks = (logits.unsqueeze(-1) >= neighbours).all(-1)  # never past a circle's bins: its lowest logits
        ranked = logits.masked_fill(~peaks, float("-inf")).topk(min(modes, self.max_bins), dim=-1)
        # each candidate's point: the circular mean of the softmax over its window, as latents() takes the mode's
        span = (ranked.indices.unsqueeze(-1) + window).remainder(wrap)  # (B, circles, K, 2w + 1)
        weights = logits.softmax(-1).gather(-1, span.flatten(-2)).unflatten(-1, span.shape[-2:])
        span_points = self.bin_points[span] if isinstance(bins, int) else self.bin_points[circle, span]
        points = F.normalize((weights.unsqueeze(-1) * span_points).sum(-2), dim=-1) * circles**-0.5
        valid = ranked.values.isfinite()  # fewer peaks than `modes`
        hesitant = valid[..., 1:].any(-1)  # (B, circles): a second mode to try
        if confidence is not None:
            hesitant &= weights[:, :, 0].sum(-1) < confidence
        chosen = points[:, :, 0].clone()  # (B, circles, 2): the modes, i.e. encode()
        candidates = points.shape[2]
        for circle in range(circles):
            hesitating = hesitant[:, circle].nonzero().squeeze(-1)  # decode only the frames that hesitate here
            blocks = hesitating.split(max(1, _SYNTHESIS_DECODES // candidates)) if len(hesitating) else ()
            for rows in blocks:  # in blocks: bounds the decoder's memory
                trials = chosen[rows].unsqueeze(1).repeat(1, candidates, 1, 1)  # (R, K, circles, 2)
                trials[:, :, circle] = points[rows, circle]
                logits = self.decode_logits(trials.flatten(-2))  # (R, K, H, W, C)
                error = frame_bce(logits, images[rows].unsqueeze(1).expand_as(logits))  # the decoder's own loss
                best = error.masked_fill(~valid[rows, circle], float("inf")).argmin(1)
                chosen[rows] = trials[torch.arange(len(rows), device=rows.device), best]
        return chosen.flatten(-2)

    def angle_mean_points(self, outputs: torch.Tensor) -> torch.Tensor:
        """The encoder's outputs (..., m) -> each circle's mean bin point, scaled like the torus (..., n) (angle bins).

        The mean of all the bins' points under the softmax of their logits (the target term's point): inside the
        circle while the distribution is spread, on it, at the encoding (:meth:`latents`), for a distribution on
        one bin.
        """
        weights = self.angle_logits(outputs).softmax(dim=-1)  # (..., circles, M)
        return (self._bin_means(weights) * (self.latent_dim // 2) ** -0.5).flatten(-2)

    def angle_logits(self, outputs: torch.Tensor) -> torch.Tensor:
        """The encoder's outputs (..., m) -> logits of every circle's ``M`` angles (..., n / 2, M) (``angle_bins``).

        With bins per circle, ``M`` is the most of a circle, and a circle's logits past its own bins are the
        dtype's lowest number: no probability, and no gradient to the encoder's outputs there.
        """
        if self.angle_bins is None:
            raise ValueError("angle_logits needs a model with `angle_bins`.")
        logits = outputs.unflatten(-1, (self.latent_dim // 2, self.max_bins))
        if isinstance(self.bins, int):
            return logits
        # the lowest finite number, not -inf: a cross-entropy's zero target weight there times -inf would be nan
        return logits.masked_fill(~self.bin_valid, torch.finfo(logits.dtype).min)

    def angle_cross_entropy(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of every circle's angle logits against its target angle's two nearest bins.

        The target distribution is :func:`angle_bin_weights` of the target: all on one bin at a bin's own angle,
        else split between the two nearest, whose circular mean lies within ``(2 pi / M)^3 / 32`` radians of
        the target angle; so a target between bins is reachable too.

        Args:
            outputs: The encoder's outputs, shape (B, m).
            targets: Target points of the torus, shape (B, n).
        """
        logits = self.angle_logits(outputs).flatten(0, -2).float()
        wanted = angle_bin_weights(targets, self.bins).flatten(0, -2)
        return F.cross_entropy(logits, wanted)

    def decode_logits(self, latents: torch.Tensor, lookup: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (..., n) -> pixel logits (..., H, W, C).

        Args:
            latents: Shape (..., n).
            lookup: Optional points of the same shape whose angles an angle-bin decoder's look-up reads instead of
                the latents' (a warm-up's known places, ``warmup.cycles.decoder_reads_targets``).
        """
        batch = latents.shape[:-1]
        flat = latents.reshape(-1, self.latent_dim)
        if self.angle_bins is not None:
            # The look-up weights pass no gradient to the latent: in the angle, their slope is M / 2 pi times a
            # difference of unrelated embeddings, which summed over a rollout threw encoders off their map.
            read = flat if lookup is None else lookup.reshape(-1, self.latent_dim)
            weights = angle_bin_weights(read.detach(), self.bins).flatten(-2)
            if not isinstance(self.bins, int):
                weights = weights[..., self.bin_inputs]  # each circle's own bins
            flat = torch.cat([flat, weights], dim=-1)
            if self.lookup_feature_map:  # the same two bins per circle, as rows of the circles' stacked tables
                rows, row_weights = angle_bin_neighbours(read.detach(), self.bins)
                rows = rows + self.lookup_first_rows
                return self.decoder(flat, (rows.flatten(-2), row_weights.flatten(-2))).reshape(
                    *batch, *self.image_shape
                )
        return self.decoder(flat).reshape(*batch, *self.image_shape)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (..., n) -> pixel intensities in [0, 1], shape (..., H, W, C)."""
        return torch.sigmoid(self.decode_logits(latents))

    @torch.no_grad()
    def rotate_latent_basis(self, basis: torch.Tensor) -> None:
        """Express the latent space in another orthonormal basis: the new coordinates are ``basis^T e``.

        The encoder's last layer and the decoder's first layer turn together, so ``decode(encode(x))`` is
        unchanged; the action angles are left as they are (set them to the rotations in the new basis).

        Args:
            basis: Orthogonal matrix of shape (n, n) whose columns are the new basis vectors.

        Raises:
            ValueError: For ``latent_manifold="torus"``, whose coordinate pairs a new basis would mix.
        """
        if self.latent_manifold == "torus":
            raise ValueError("rotate_latent_basis needs latent_manifold='sphere': a torus fixes its coordinate pairs.")
        if basis.shape != (self.latent_dim, self.latent_dim):
            raise ValueError(
                f"`basis` must have shape ({self.latent_dim}, {self.latent_dim}), got {tuple(basis.shape)}."
            )
        out, into = self.encoder.head[-1], self.decoder.head[0]
        out.weight.copy_(basis.T @ out.weight)
        out.bias.copy_(basis.T @ out.bias)
        into.weight.copy_(into.weight @ basis)

    def rotate(
        self, latents: torch.Tensor, actions: torch.Tensor, magnitudes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply one action (optionally ``magnitude`` times) to each latent.

        Args:
            latents: Shape (..., n).
            actions: Long tensor of shape (...).
            magnitudes: Optional integer tensor of shape (...).

        Returns:
            Shape (..., n).
        """
        return (self.rotations(actions, magnitudes) @ latents.unsqueeze(-1)).squeeze(-1)

    def path_rotations(self, actions: torch.Tensor) -> torch.Tensor:
        """Cumulative rotations ``P_t = R(a_t) ... R(a_1)`` along each episode, with ``P_0 = I``.

        Args:
            actions: Long tensor of shape (B, T).

        Returns:
            Shape (B, T + 1, n, n).
        """
        return cumulative_rotations(self.rotations.matrices()[actions])

    def rollout(self, start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Latent rollout ``z_t = R(a_t) z_(t-1)`` from ``z_0 = start``.

        Args:
            start: Shape (B, n).
            actions: Long tensor of shape (B, T).

        Returns:
            Shape (B, T + 1, n).
        """
        steps = self.rotations.matrices()[actions]
        latents = [start]
        for t in range(actions.shape[1]):
            latents.append((steps[:, t] @ latents[-1].unsqueeze(-1)).squeeze(-1))
        return torch.stack(latents, dim=1)

    def forward(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Predicted intensities of an episode from its first frame: ``decode(rollout(encode(x_0), a))``.

        Args:
            frames: Shape (B, H, W, C), the first frame of each episode.
            actions: Long tensor of shape (B, T).

        Returns:
            Shape (B, T + 1, H, W, C).
        """
        return self.decode(self.rollout(self.encode(frames), actions))


def synthesis_modes_for(model: nn.Module, asked: int | str, name: str = "synthesis_modes") -> int:
    """Modes per circle of ``model``'s encodings (:func:`encode_checked`) for a setting ``asked``.

    ``"auto"`` is :data:`DEFAULT_SYNTHESIS_MODES` for an angle-bin :class:`WorldModel` and 1 (the encoder's own
    encoding) for any other model; a number is checked, and above 1 needs angle bins.

    Raises:
        ValueError: Naming ``name``, for anything else, or more than 1 mode on a model without angle bins.
    """
    binned = getattr(model, "angle_bins", None) is not None
    if asked == "auto":
        return DEFAULT_SYNTHESIS_MODES if binned else 1
    check_int(name, asked, minimum=1)
    if asked > 1 and not binned:
        raise ValueError(f"`{name}` above 1 needs an angle-bin model (modes to choose from), got {asked}.")
    return int(asked)


def encode_checked(model: nn.Module, frames: torch.Tensor, synthesis_modes: int) -> torch.Tensor:
    """``model.encode(frames)``, or for ``synthesis_modes`` above 1 its decoder-checked encodings.

    Frames of any leading shape (..., H, W, C) -> (..., n). See :meth:`WorldModel.encode_by_synthesis`;
    :func:`synthesis_modes_for` gives the number of modes.
    """
    if synthesis_modes == 1:
        return model.encode(frames)
    flat = frames.reshape(-1, *frames.shape[-3:])
    return model.encode_by_synthesis(flat, synthesis_modes).reshape(*frames.shape[:-3], -1)
