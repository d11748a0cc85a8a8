"""What the baselines share: the model interface that evaluation reads, and the method base class.

A baseline's model is a :class:`PredictiveModel`: it encodes images (the representation the probe and the
metrics judge) and imagines the frames of an episode from its first frame and its actions. It has no
rotations, so the rotation-specific figures (planes, angles, closures) and criteria do not apply to it
(:mod:`dyndis_learn.evaluate`). A :class:`LatentPredictiveModel` imagines in its latent space, one latent
step per action, and decodes each latent, so it also reconstructs (``decode(encode(x))``); a model that
predicts the next image directly (:mod:`dyndis_learn.baselines.direct`) has no frame at ``t = 0`` of its own.

:class:`BaselineMethod` is the :class:`~dyndis_learn.methods.Method` of a baseline: it trains without a
warm-up (the warm-ups set rotation angles) and logs no plane share (NaN).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from dyndis_learn.config import ModelConfig, TrainConfig
from dyndis_learn.methods import Method
from dyndis_learn.objective import TERMS

__all__ = [
    "BaselineMethod",
    "LatentPredictiveModel",
    "PredictiveModel",
    "action_effects",
    "all_terms",
    "imagined_frames",
]


def action_effects(env: Any) -> tuple[Any, ...] | None:
    """The environment's published ``action_effects`` (single or vector env, or their core), or None."""
    effects = getattr(env, "action_effects", None)
    if effects is None:
        effects = getattr(getattr(env, "unwrapped", None), "action_effects", None)
    return None if effects is None else tuple(effects)


class PredictiveModel(nn.Module, abc.ABC):
    """A world model without rotations: an encoder and a predictor of an episode's frames.

    Args:
        image_shape: (H, W, C) of the observations.
        n_actions: Number of discrete actions.
        latent_dim: Size ``n`` of the encodings.
    """

    #: The first step ``t`` that :meth:`imagine_logits` predicts: 0 for a model that reconstructs its input
    #: frame, 1 for one that only predicts the frames after it.
    first_step: ClassVar[int] = 0

    def __init__(self, image_shape: Sequence[int], n_actions: int, latent_dim: int) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self._n_actions = int(n_actions)
        self.latent_dim = int(latent_dim)

    @property
    def n_actions(self) -> int:
        """Number of discrete actions."""
        return self._n_actions

    @abc.abstractmethod
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 or float images (..., H, W, C) -> their representation (..., n)."""

    @abc.abstractmethod
    def imagine_logits(self, first: torch.Tensor, actions: torch.Tensor) -> Iterator[torch.Tensor]:
        """The pixel logits of the imagined frames ``t = first_step .. T``, one step at a time.

        Args:
            first: The first frame of each episode, uint8 or float (B, H, W, C).
            actions: Long tensor (B, T).

        Yields:
            Logits of shape (B, H, W, C), for ``t = first_step``, then ``first_step + 1``, ... ``T``.
        """


class LatentPredictiveModel(PredictiveModel):
    """A predictive model that imagines in latent space: ``z_0 = encode(x_0)``, ``z_t = step(z_(t-1), a_t)``.

    Subclasses provide :meth:`encode`, :meth:`decode_logits` and :meth:`step`.
    """

    first_step: ClassVar[int] = 0

    @abc.abstractmethod
    def decode_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (..., n) -> pixel logits (..., H, W, C)."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (..., n) -> pixel intensities in [0, 1], shape (..., H, W, C)."""
        return torch.sigmoid(self.decode_logits(latents))

    @abc.abstractmethod
    def step(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """One latent step: latents (B, n) and actions (B,) -> the next latents (B, n)."""

    def rollout(self, start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Latent rollout ``z_t = step(z_(t-1), a_t)`` from ``z_0 = start`` (B, n); returns (B, T + 1, n)."""
        latents = [start]
        for t in range(actions.shape[1]):
            latents.append(self.step(latents[-1], actions[:, t]))
        return torch.stack(latents, dim=1)

    def imagine_logits(self, first: torch.Tensor, actions: torch.Tensor) -> Iterator[torch.Tensor]:
        """``decode_logits(z_t)`` for ``t = 0 .. T`` (see :class:`PredictiveModel`)."""
        latent = self.encode(first)
        yield self.decode_logits(latent)
        for t in range(actions.shape[1]):
            latent = self.step(latent, actions[:, t])
            yield self.decode_logits(latent)


@torch.no_grad()
def imagined_frames(
    model: PredictiveModel, first: torch.Tensor, actions: torch.Tensor, steps: Sequence[int]
) -> np.ndarray:
    """uint8 imagined frames ``round(255 * sigmoid(logits))`` at ``steps`` (each ``>= model.first_step``).

    Returns:
        Shape (B, len(steps), H, W, C), in the order of ``steps``.
    """
    wanted = {int(k): i for i, k in enumerate(steps)}
    if wanted and (min(wanted) < model.first_step or max(wanted) > actions.shape[1]):
        raise ValueError(f"`steps` must lie in [{model.first_step}, {actions.shape[1]}], got {list(steps)}.")
    out = np.empty((first.shape[0], len(wanted), *model.image_shape), dtype=np.uint8)
    last = max(wanted, default=-1)
    for t, logits in enumerate(model.imagine_logits(first, actions[:, : max(last, 0)]), start=model.first_step):
        if t in wanted:
            out[:, wanted[t]] = (torch.sigmoid(logits.float()) * 255).round().to(torch.uint8).cpu().numpy()
        if t >= last:
            break
    return out


def all_terms(loss: torch.Tensor, **own: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every term of :data:`~dyndis_learn.objective.TERMS` (0 where the method has none), ``own``, and ``loss``."""
    zero = loss.new_zeros(())
    unknown = sorted(set(own) - set(TERMS))
    if unknown:
        raise ValueError(f"Unknown loss term(s) {unknown}; the log's terms are {list(TERMS)}.")
    return {**{name: own.get(name, zero) for name in TERMS}, "loss": loss}


class BaselineMethod(Method):
    """A baseline's :class:`~dyndis_learn.methods.Method`: no warm-up, no plane share, two parameter groups.

    The optimiser's groups are the encoder (``"encoder"``, at ``optim.lr``) and everything else
    (``"decoder"``: the decoder and the action maps, at ``optim.lr`` too).
    """

    #: The model a subclass builds: ``model_class(image_shape, n_actions, latent_dim, channels, kernel_size,
    #: stride, hidden_dim, encoder_norm)``.
    model_class: ClassVar[type[nn.Module]]

    def build_model(
        self, image_shape: Sequence[int], n_actions: int, config: ModelConfig, generator: torch.Generator | None = None
    ) -> nn.Module:
        """The untrained :attr:`model_class` (its weights from torch's global RNG; ``generator`` is not used)."""
        return self.model_class(
            image_shape,
            n_actions,
            config.latent_dim,
            config.channels,
            config.kernel_size,
            config.stride,
            config.hidden_dim,
            config.encoder_norm,
        )

    def prepare(self, model: Any, config: TrainConfig, env: Any) -> None:
        """Refuse a warm-up: the warm-ups set and align rotation angles, which a baseline does not have."""
        if config.warmup.kind != "none":
            raise ValueError(
                f"WarmupConfig.kind must be 'none' for the method {config.model.method!r} (the warm-ups set rotation "
                f"angles, which it has not), got {config.warmup.kind!r}: pass --warmup.kind none."
            )

    def plane_share(self, model: Any) -> float:
        """NaN: a baseline has no rotation planes."""
        return math.nan

    def parameter_groups(self, model: Any) -> list[tuple[str, list[nn.Parameter]]]:
        """The encoder's parameters, and all the others."""
        encoder = list(model.encoder.parameters())
        ids = {id(p) for p in encoder}
        return [("encoder", encoder), ("decoder", [p for p in model.parameters() if id(p) not in ids])]
