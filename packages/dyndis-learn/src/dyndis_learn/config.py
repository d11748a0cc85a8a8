"""Configuration dataclasses: every field documented and validated in ``__post_init__``.

:class:`TrainConfig` is the whole recipe of a run (environment, model, objective, schedules, logging);
:class:`ModelConfig`, :class:`RegularizerConfig` and :class:`EvalConfig` are its parts. All of them
round-trip through plain dicts (:meth:`TrainConfig.to_dict` / :meth:`TrainConfig.from_dict`), which is
how they are stored in checkpoints and read from ``--config`` files.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dyndis_learn.networks import ENCODER_NORMS
from dyndis_learn.regularizers import EntanglementTarget, ScheduleKind, WeightSchedule
from dyndis_learn.rotations import Parametrisation

__all__ = ["WARMUPS", "EvalConfig", "ModelConfig", "RegularizerConfig", "TrainConfig"]

#: The ways of starting the encoder (``TrainConfig.warmup``).
WARMUPS = ("graph", "spectral")
#: ``TrainConfig.angle_lr`` under the spectral warm-up when it is not given.
SPECTRAL_ANGLE_LR = 1e-2

_T = TypeVar("_T")


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}.")


def _check_float(
    owner: str, name: str, value: Any, minimum: float, *, strict: bool = False, maximum: float = math.inf
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum) and value <= maximum
    if not ok:
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        upper = f" and <= {maximum:g}" if math.isfinite(maximum) else ""
        raise ValueError(f"{owner}.{name} must be a finite number {bound}{upper}, got {value!r}.")


def _from_mapping(cls: type[_T], data: Mapping[str, Any], nested: Mapping[str, type] | None = None) -> _T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys with a suggestion."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__} expects a mapping of field names to values, got {type(data).__name__}.")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in names]
    if unknown:
        hints = {key: difflib.get_close_matches(key, names, n=1) for key in unknown}
        hint = "; ".join(f"{k!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for k, m in hints.items())
        raise ValueError(f"Unknown {cls.__name__} field(s): {hint}. Allowed: {names}.")
    kwargs = dict(data)
    for key, sub in (nested or {}).items():
        if key in kwargs and not isinstance(kwargs[key], sub):
            kwargs[key] = sub.from_dict(kwargs[key])
    return cls(**kwargs)


@dataclass
class ModelConfig:
    """The world model's architecture."""

    latent_dim: int = 4
    """Dimension ``n`` of the latent space; encodings live on the unit sphere S^(n-1). Needs at least two
    dimensions per factor to give every factor its own plane."""
    channels: tuple[int, ...] = (32, 32, 64, 64)
    """Output channels of the encoder's strided convolutions (the decoder mirrors them)."""
    kernel_size: int = 4
    """Kernel size of every (transposed) convolution."""
    stride: int = 2
    """Stride of every (transposed) convolution."""
    hidden_dim: int = 256
    """Units of the fully connected hidden layer of the encoder and of the decoder."""
    parametrisation: str = "givens"
    """Action matrices: ``"givens"`` (ordered product of Givens rotations) or ``"exp"`` (matrix
    exponential)."""
    angle_init_scale: float = 0.01
    """Initial angles are uniform in ``[-angle_init_scale, angle_init_scale]`` radians."""
    encoder_norm: str = "none"
    """``"none"`` or ``"instance"``: normalise each encoder convolution per image and channel
    (:class:`~dyndis_learn.networks.ConvEncoder`). Needed where a factor changes every pixel: on a 9 x 9
    GridWorld with 5 background colours the plain encoder never learned position or object colour
    (linear R^2 0.2-0.3 after 1,200 steps), the normalised one learned every factor in 150 steps."""

    def __post_init__(self) -> None:
        _check_int("ModelConfig", "latent_dim", self.latent_dim, 2)
        if isinstance(self.channels, (str, bytes)) or not hasattr(self.channels, "__iter__"):
            raise ValueError(f"ModelConfig.channels must be a sequence of positive integers, got {self.channels!r}.")
        self.channels = tuple(self.channels)
        if not self.channels:
            raise ValueError("ModelConfig.channels must hold at least one convolution, got ().")
        for c in self.channels:
            _check_int("ModelConfig", "channels[i]", c, 1)
        _check_int("ModelConfig", "kernel_size", self.kernel_size, 1)
        _check_int("ModelConfig", "stride", self.stride, 1)
        _check_int("ModelConfig", "hidden_dim", self.hidden_dim, 1)
        allowed = [p.value for p in Parametrisation]
        if self.parametrisation not in allowed:
            raise ValueError(f"ModelConfig.parametrisation must be one of {allowed}, got {self.parametrisation!r}.")
        _check_float("ModelConfig", "angle_init_scale", self.angle_init_scale, 0.0)
        if self.encoder_norm not in ENCODER_NORMS:
            allowed = list(ENCODER_NORMS)
            raise ValueError(f"ModelConfig.encoder_norm must be one of {allowed}, got {self.encoder_norm!r}.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a mapping (as stored by :meth:`TrainConfig.to_dict`)."""
        return _from_mapping(cls, data)


@dataclass
class RegularizerConfig:
    """The entanglement regulariser on the action angles (see :mod:`dyndis_learn.regularizers`)."""

    target: str = "min"
    """``"min"`` (one plane per action), ``"max"`` or ``"value"``."""
    value: float = 0.0
    """Target entanglement for ``target="value"``."""
    schedule: str = "linear"
    """Weight schedule: ``"constant"`` (``weight`` from the first step) or ``"linear"`` (0 until ``delay``,
    then a ramp to ``weight`` over ``ramp`` steps)."""
    weight: float = 0.3
    """Final weight of the regulariser."""
    delay: int | None = None
    """Steps before the linear ramp starts; None: at the end of ``TrainConfig.warmup_steps``, so that every
    action grows in one plane from the moment the dynamics terms start."""
    ramp: int | None = None
    """Length of the linear ramp in steps; None: ``TrainConfig.dynamics_ramp_steps``."""

    def __post_init__(self) -> None:
        targets = [t.value for t in EntanglementTarget]
        if self.target not in targets:
            raise ValueError(f"RegularizerConfig.target must be one of {targets}, got {self.target!r}.")
        kinds = [k.value for k in ScheduleKind]
        if self.schedule not in kinds:
            raise ValueError(f"RegularizerConfig.schedule must be one of {kinds}, got {self.schedule!r}.")
        _check_float("RegularizerConfig", "value", self.value, 0.0)
        _check_float("RegularizerConfig", "weight", self.weight, 0.0)
        for name in ("delay", "ramp"):
            if getattr(self, name) is not None:
                _check_int("RegularizerConfig", name, getattr(self, name), 0)

    def weight_schedule(self, warmup_steps: int, dynamics_ramp_steps: int) -> WeightSchedule:
        """The schedule that maps a step to the weight (None delay / ramp follow the training warm-up)."""
        delay = warmup_steps if self.delay is None else self.delay
        ramp = dynamics_ramp_steps if self.ramp is None else self.ramp
        return WeightSchedule(self.schedule, end=self.weight, start=0.0, delay=delay, ramp=ramp)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegularizerConfig:
        """Build from a mapping (as stored by :meth:`TrainConfig.to_dict`)."""
        return _from_mapping(cls, data)


@dataclass
class EvalConfig:
    """How a trained model is evaluated and reported."""

    episodes: int = 32
    """Evaluation episodes (fresh random starts, random actions) for the rollout error and the closures."""
    horizon: int = 500
    """Rollout length ``k_max``: the BCE is reported for every step ``k = 1 .. horizon``."""
    seed: int = 1_000_003
    """Seed of the evaluation episodes (kept apart from the training stream)."""
    gif_steps: int = 120
    """Frames of the ground-truth vs reconstruction GIF (the first steps of one long rollout)."""
    bce_ratio_limit: float = 1.2
    """Quality criterion: rollout BCE at ``k = horizon`` at most this times the BCE at ``k = 1``."""
    share_threshold: float = 0.99
    """Quality criterion: share of ``sum(theta^2)`` that every action must hold in its dominant plane."""
    angle_tolerance: float = 0.01
    """Quality criterion: relative distance of the dominant angle to the nearest ``2 pi k / N``."""

    def __post_init__(self) -> None:
        _check_int("EvalConfig", "episodes", self.episodes, 1)
        _check_int("EvalConfig", "horizon", self.horizon, 1)
        _check_int("EvalConfig", "seed", self.seed, 0)
        _check_int("EvalConfig", "gif_steps", self.gif_steps, 1)
        _check_float("EvalConfig", "bce_ratio_limit", self.bce_ratio_limit, 0.0, strict=True)
        _check_float("EvalConfig", "share_threshold", self.share_threshold, 0.0, maximum=1.0)
        _check_float("EvalConfig", "angle_tolerance", self.angle_tolerance, 0.0, strict=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalConfig:
        """Build from a mapping (as stored by :meth:`TrainConfig.to_dict`)."""
        return _from_mapping(cls, data)


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults train GridWorld 5x5 in a few minutes on 2 CPU cores.

    The objective (see :mod:`dyndis_learn.losses`) is: autoencoding BCE on every frame throughout; during
    the warm-up the regression onto the explored transition graph's eigenmap (``warmup="graph"``) or the
    spectral terms and the plane alignment (``warmup="spectral"``); then, ramped in, the rollout BCE of
    the design (decode the rotated first frame), the latent consistency between rotated and encoded
    frames, uniformity, and the entanglement regulariser. :mod:`dyndis_learn.trainer` walks through one
    run.
    """

    env_id: str = "DynDis/GridWorld-v0"
    """Gymnasium id of the environment (made with ``gym.make_vec``)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the environment, e.g. ``{"factors": {"size": "all"}}``."""
    seed: int = 0
    """Seed of the initial weights, the training episodes and their random actions."""
    steps: int = 600
    """Number of SGD steps."""
    episodes_per_step: int = 4
    """Episodes ``B`` per SGD step after the warm-up, each from a fresh random start."""
    episode_steps: int = 20
    """Steps ``T`` per episode after the warm-up: every SGD step sees ``B (T + 1)`` frames. Long episodes
    give the rollout and consistency terms a long lever arm on the angles (precise to 500 steps)."""
    warmup: str = "graph"
    """How the encoder gets its start during the first ``warmup_steps`` steps:

    - ``"graph"``: explore the environment, identify states by their images, and regress the encoder onto
      the Laplacian eigenmap of the transition graph, already turned onto the actions' planes
      (:mod:`dyndis_learn.transition_graph`). Needs an environment that renders each state the same way
      every time, whose states random exploration can cover (tens of thousands at most), and whose
      factors' first Fourier modes are among the ``eigenmap_candidates`` smoothest eigenvectors. The
      angles stay at their fit to the explored transitions (``angle_lr``).
    - ``"spectral"``: learn the same map by SGD on transition smoothness under whitening, through the
      encoder alone, then align the planes (``align_planes``). Needs no exploration, but converges slowly
      where factors change the image by very different amounts (on Shapes3D it misses orientation)."""
    exploration_batches: int = 16
    """Graph warm-up: batches of random episodes that explore the transition graph..."""
    exploration_episodes: int = 32
    """...each of this many episodes..."""
    exploration_steps: int = 100
    """...of this many steps (51,200 transitions by default; about 1 s on Shapes3D)."""
    eigenmap_candidates: int = 64
    """Graph warm-up: the Laplacian eigenvectors searched for each factor's first Fourier modes. Every mode
    smoother than the roughest factor's first one must be among them: 12 for a 9 x 9 grid with 5 colours
    and 5 backgrounds (:func:`~dyndis_learn.transition_graph.laplacian_eigenmap`)."""
    graph_batch_size: int = 96
    """Graph warm-up: explored states (drawn uniformly) per SGD step."""
    target_weight: float = 1.0
    """Graph warm-up: weight of ``mean ||e - y||^2``, the distance of each encoding to its state's embedding.
    It trains the encoder during the warm-up and then, on every frame of an explored state, keeps it on
    that map: otherwise the dynamics terms shrink a factor whose images change little (Shapes3D's
    orientation) and its angle drifts by 1-3%."""
    warmup_episodes_per_step: int = 16
    """Spectral warm-up: episodes per SGD step. Many short episodes from as many random starts spread the
    batch over the state space, which the whitening penalty (estimated per batch) needs."""
    warmup_episode_steps: int = 5
    """Spectral warm-up: steps per episode."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture of the world model."""
    lr: float = 2e-3
    """Adam learning rate of the encoder and decoder."""
    angle_lr: float | None = None
    """Adam learning rate of the action angles; 0 keeps them where the warm-up put them. ``None`` (the
    default) means 0 under the graph warm-up, whose fit to the explored transitions is exact to a fraction
    of a percent (learned further, the dynamics terms pulled them 1-12% off on 4-factor GridWorlds), and
    ``SPECTRAL_ANGLE_LR`` under the spectral one, whose batch fit is only a start."""
    angle_lr_ramp: bool = True
    """Ramp the angles' learning rate up with the dynamics terms (see :meth:`learning_rate`)."""
    decay_start: float = 0.75
    """Fraction of ``steps`` after which both learning rates decay geometrically..."""
    final_lr_fraction: float = 0.01
    """...down to this fraction of their initial value at the last step."""
    warmup_steps: int = 150
    """Steps of the warm-up (see ``warmup``) before the dynamics terms start."""
    dynamics_ramp_steps: int = 75
    """Steps over which the rollout and consistency weights ramp from 0 to their values after warm-up."""
    autoencoder_weight: float = 1.0
    """Weight of the BCE of ``decode(encode(x_t))`` against ``x_t``."""
    rollout_weight: float = 1.0
    """Weight of the BCE of ``decode(R(a_t) ... R(a_1) encode(x_0))`` against ``x_t``."""
    split_decoding: bool = True
    """After warm-up, decode each frame ``t >= 1`` once, from ``P_t e_0`` or from ``e_t`` at random (half
    the decoder cost); False decodes both."""
    consistency_weight: float = 1.0
    """Weight of the latent consistency between rotated and encoded frames (scale-free, see losses)."""
    multistep_weight: float = 0.3
    """Weight of the all-pairs (long-horizon) consistency relative to the one-step consistency."""
    align_planes: bool = True
    """Spectral warm-up: at its end, fit every action's rotation to the encoded transitions of the batch and
    turn the latent basis onto their common planes (see :mod:`dyndis_learn.alignment`); the angles start
    from the fitted ones."""
    smoothness_weight: float = 3.0
    """Spectral warm-up: weight of the transition smoothness ``mean ||e_t - e_(t-1)||^2`` (see losses)."""
    whitening_weight: float = 10.0
    """Spectral warm-up: weight of the whitening penalty that holds the encodings at zero mean and
    covariance ``I / n``. Both spectral terms are at full weight during the warm-up and fade out as the
    dynamics terms ramp in: estimated on a few long episodes, the covariance is far from the state
    distribution's, and its noise would keep the encoder from the precise equivariance that 500-step
    rollouts need."""
    uniformity_weight: float = 0.1
    """Weight of the uniformity term that spreads encodings over the sphere (prevents collapse)."""
    uniformity_temperature: float = 2.0
    """Temperature ``t`` of the uniformity term ``log mean exp(-t ||e_i - e_j||^2)``."""
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    """The entanglement regulariser and its weight schedule."""
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation and report settings."""
    log_every: int = 10
    """Write a row of the CSV (and TensorBoard) log every this many steps."""
    checkpoint_every: int = 200
    """Write a checkpoint every this many steps (0: only at the end of ``train``)."""
    threads: int = 2
    """Torch intra-op threads (0 leaves torch's default)."""
    tensorboard: bool = False
    """Also log to TensorBoard (needs the ``tensorboard`` extra)."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"TrainConfig.env_id must be a non-empty Gymnasium id, got {self.env_id!r}.")
        if not isinstance(self.env_kwargs, Mapping):
            raise ValueError(f"TrainConfig.env_kwargs must be a dict of keyword arguments, got {self.env_kwargs!r}.")
        self.env_kwargs = dict(self.env_kwargs)
        if isinstance(self.model, Mapping):
            self.model = ModelConfig.from_dict(self.model)
        if isinstance(self.regularizer, Mapping):
            self.regularizer = RegularizerConfig.from_dict(self.regularizer)
        if isinstance(self.evaluation, Mapping):
            self.evaluation = EvalConfig.from_dict(self.evaluation)
        _check_int("TrainConfig", "seed", self.seed, 0)
        _check_int("TrainConfig", "steps", self.steps, 1)
        _check_int("TrainConfig", "episodes_per_step", self.episodes_per_step, 1)
        _check_int("TrainConfig", "episode_steps", self.episode_steps, 1)
        if self.warmup not in WARMUPS:
            raise ValueError(f"TrainConfig.warmup must be one of {list(WARMUPS)}, got {self.warmup!r}.")
        _check_int("TrainConfig", "exploration_batches", self.exploration_batches, 1)
        _check_int("TrainConfig", "exploration_episodes", self.exploration_episodes, 1)
        _check_int("TrainConfig", "exploration_steps", self.exploration_steps, 1)
        _check_int("TrainConfig", "eigenmap_candidates", self.eigenmap_candidates, 1)
        if self.eigenmap_candidates < self.model.latent_dim:
            raise ValueError(
                f"TrainConfig.eigenmap_candidates must be >= model.latent_dim ({self.model.latent_dim}), "
                f"got {self.eigenmap_candidates}."
            )
        _check_int("TrainConfig", "graph_batch_size", self.graph_batch_size, 1)
        _check_int("TrainConfig", "warmup_episodes_per_step", self.warmup_episodes_per_step, 1)
        _check_int("TrainConfig", "warmup_episode_steps", self.warmup_episode_steps, 1)
        _check_float("TrainConfig", "lr", self.lr, 0.0, strict=True)
        if self.angle_lr is not None:
            _check_float("TrainConfig", "angle_lr", self.angle_lr, 0.0)
        _check_float("TrainConfig", "decay_start", self.decay_start, 0.0, maximum=1.0)
        _check_float("TrainConfig", "final_lr_fraction", self.final_lr_fraction, 0.0, strict=True, maximum=1.0)
        _check_int("TrainConfig", "warmup_steps", self.warmup_steps, 0)
        _check_int("TrainConfig", "dynamics_ramp_steps", self.dynamics_ramp_steps, 0)
        for name in (
            "autoencoder_weight",
            "rollout_weight",
            "consistency_weight",
            "multistep_weight",
            "target_weight",
            "smoothness_weight",
            "whitening_weight",
            "uniformity_weight",
        ):
            _check_float("TrainConfig", name, getattr(self, name), 0.0)
        if self.autoencoder_weight == 0 and self.rollout_weight == 0:
            raise ValueError(
                "TrainConfig: autoencoder_weight and rollout_weight cannot both be 0 (nothing trains the decoder)."
            )
        _check_float("TrainConfig", "uniformity_temperature", self.uniformity_temperature, 0.0, strict=True)
        _check_int("TrainConfig", "log_every", self.log_every, 1)
        _check_int("TrainConfig", "checkpoint_every", self.checkpoint_every, 0)
        _check_int("TrainConfig", "threads", self.threads, 0)
        if not isinstance(self.angle_lr_ramp, bool):
            raise ValueError(f"TrainConfig.angle_lr_ramp must be True or False, got {self.angle_lr_ramp!r}.")
        if not isinstance(self.align_planes, bool):
            raise ValueError(f"TrainConfig.align_planes must be True or False, got {self.align_planes!r}.")
        if not isinstance(self.split_decoding, bool):
            raise ValueError(f"TrainConfig.split_decoding must be True or False, got {self.split_decoding!r}.")
        if not isinstance(self.tensorboard, bool):
            raise ValueError(f"TrainConfig.tensorboard must be True or False, got {self.tensorboard!r}.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping, e.g. a JSON config file; unknown keys raise a ValueError with a hint."""
        return _from_mapping(
            cls, data, {"model": ModelConfig, "regularizer": RegularizerConfig, "evaluation": EvalConfig}
        )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def dynamics_weight(self, step: int) -> float:
        """Ramp factor in [0, 1] of the rollout and consistency terms at ``step``."""
        if step < self.warmup_steps:
            return 0.0
        if self.dynamics_ramp_steps == 0:
            return 1.0
        return min((step - self.warmup_steps + 1) / self.dynamics_ramp_steps, 1.0)

    def spectral_scale(self, step: int) -> float:
        """Factor in [0, 1] of the spectral terms (smoothness, whitening) at ``step``.

        With the spectral warm-up 1, then fading out with the dynamics ramp; with the graph warm-up always
        0 (the terms are only logged).
        """
        return 0.0 if self.warmup == "graph" else 1.0 - self.dynamics_weight(step)

    def regularizer_weight(self, step: int) -> float:
        """Weight of the entanglement regulariser at ``step``."""
        return self.regularizer.weight_schedule(self.warmup_steps, self.dynamics_ramp_steps)(step)

    @property
    def angle_lr_value(self) -> float:
        """``angle_lr``, or its default for the warm-up when it is ``None``."""
        if self.angle_lr is not None:
            return self.angle_lr
        return 0.0 if self.warmup == "graph" else SPECTRAL_ANGLE_LR

    def learning_rate(self, part: str, step: int) -> float:
        """Adam learning rate of ``part`` (``"encoder"``, ``"decoder"`` or ``"angles"``) at ``step``.

        The angles' rate also follows the dynamics ramp: Adam normalises away the ramp of the loss weight,
        so without it the angles would start at full speed in whatever planes the first noisy gradients
        point to, before the encoder has followed.
        """
        if part == "angles":
            ramp = self.dynamics_weight(step) if self.angle_lr_ramp else 1.0
            return self.angle_lr_value * self.lr_scale(step) * ramp
        return self.lr * self.lr_scale(step)

    def lr_scale(self, step: int) -> float:
        """Multiplier of both learning rates at ``step``: 1, then geometric decay to ``final_lr_fraction``."""
        start = self.decay_start * self.steps
        if step < start or self.steps - start <= 0:
            return 1.0
        return self.final_lr_fraction ** ((step - start) / (self.steps - start))
