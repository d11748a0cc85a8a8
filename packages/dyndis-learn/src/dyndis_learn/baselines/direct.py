"""The direct-prediction baseline of Quessard et al. (2020): predict the next image from the current one.

As in the paper's ``fig6_directmethod`` notebook: the encoder maps the current image to a compact,
unnormalised latent ``e = enc(x_t)`` in R^n; the decoder maps ``[e, onehot(a_t)]`` to the next image's pixel
logits. It is trained on the transitions ``(x_t, a_t, x_(t+1))`` of the step's episodes with the mean-pixel
BCE of the prediction against ``x_(t+1)``. A k-step rollout feeds its own predicted image (the intensities
``sigmoid(logits)``) back into the encoder. The networks are the model section's CNN (the paper's were
one convolution and a 34 x 34 transposed convolution).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from dyndis_learn.baselines.base import BaselineMethod, PredictiveModel, all_terms
from dyndis_learn.losses import frame_bce
from dyndis_learn.model import encode_frames, frames_to_float
from dyndis_learn.networks import ConvDecoder, ConvEncoder
from dyndis_learn.objective import FrameTargets, LossWeights, TrainBatch
from dyndis_learn.registry import METHODS

__all__ = ["DirectMethod", "DirectModel"]


class DirectModel(PredictiveModel):
    """Encoder ``x -> e`` in R^n and a decoder ``[e, onehot(a)] -> next image``.

    Args:
        image_shape: (H, W, C) of the observations.
        n_actions: Number of discrete actions.
        latent_dim: Size ``n`` of the image code (the paper's 4).
        channels: Encoder convolution channels (the decoder mirrors them).
        kernel_size: Convolution kernel size.
        stride: Convolution stride.
        hidden_dim: Units of the hidden fully connected layers.
        encoder_norm: One of :data:`~dyndis_learn.networks.ENCODER_NORMS` (:class:`~dyndis_learn.networks.ConvEncoder`).
    """

    #: It predicts frames ``t >= 1`` only: nothing decodes the first frame from its own code.
    first_step = 1

    def __init__(
        self,
        image_shape: Sequence[int],
        n_actions: int,
        latent_dim: int = 4,
        channels: Sequence[int] = (32, 32, 64, 64),
        kernel_size: int = 4,
        stride: int = 2,
        hidden_dim: int = 256,
        encoder_norm: str = "none",
    ) -> None:
        super().__init__(image_shape, n_actions, latent_dim)
        self.encoder = ConvEncoder(image_shape, latent_dim, channels, kernel_size, stride, hidden_dim, encoder_norm)
        self.decoder = ConvDecoder(image_shape, latent_dim + n_actions, channels, kernel_size, stride, hidden_dim)
        self.to(memory_format=torch.channels_last)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Images (..., H, W, C) -> codes (..., n)."""
        return encode_frames(self.encoder, frames)

    def next_logits(self, codes: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The next image's pixel logits (..., H, W, C) from codes (..., n) and actions (...)."""
        batch = codes.shape[:-1]
        onehot = F.one_hot(actions, self.n_actions).to(codes.dtype)
        inputs = torch.cat([codes, onehot], dim=-1).reshape(-1, self.latent_dim + self.n_actions)
        return self.decoder(inputs).reshape(*batch, *self.image_shape)

    def imagine_logits(self, first: torch.Tensor, actions: torch.Tensor) -> Iterator[torch.Tensor]:
        """Frames ``t = 1 .. T``: predict, then encode the predicted intensities for the next step."""
        image = frames_to_float(first)
        for t in range(actions.shape[1]):
            logits = self.next_logits(self.encode(image), actions[:, t])
            yield logits
            image = torch.sigmoid(logits.float())


@METHODS.register("direct")
class DirectMethod(BaselineMethod):
    """The paper's direct next-image predictor, trained on the transitions of the step's episodes.

    The loss is its one term, the BCE of the predicted next images (logged as ``rollout_bce``: the 1-step
    prediction), at weight 1 from the first step (the ``loss.*`` weights and the dynamics ramp are not used).
    """

    model_class = DirectModel

    def terms(
        self, model: DirectModel, batch: TrainBatch, weights: LossWeights, targets: FrameTargets | None
    ) -> dict[str, torch.Tensor]:
        """The mean BCE of ``dec([enc(x_t), onehot(a_t)])`` against ``x_(t+1)`` over every transition."""
        frames, actions = batch.frames, batch.actions
        if actions.shape[1] == 0:
            raise ValueError("The direct method trains on transitions: `batch` must hold episodes of T >= 1 steps.")
        codes = model.encode(frames[:, :-1]).float()
        logits = model.next_logits(codes, actions).float()
        bce = frame_bce(logits, frames_to_float(frames[:, 1:])).mean()
        return all_terms(bce, rollout_bce=bce)
