"""The configuration of a run: one tree of dataclasses, nested by concern.

:class:`TrainConfig` is the whole recipe; each section is a dataclass of its own: the environment
(:class:`EnvConfig`), the episodes of each SGD step (:class:`DataConfig`), the model
(:class:`ModelConfig`), the warm-up (:class:`WarmupConfig`, with a section per kind), optimisation and
schedules (:class:`OptimConfig`), the loss weights (:class:`LossConfig`), the regulariser
(:class:`RegularizerConfig`), evaluation (:class:`EvalConfig`) and logging (:class:`LogConfig`).

Every field declares what it accepts in its type (checked by :func:`~dyndis_learn.validation.validate_fields`)
and documents itself in a docstring, which ``dyndis-learn train --help`` prints. The tree round-trips
through plain dicts (:meth:`TrainConfig.to_dict` / :meth:`TrainConfig.from_dict`), which is how it is
stored in checkpoints and read from JSON or YAML files; :func:`migrate_config` upgrades the flat dicts of
format-1 checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

import tyro

from dyndis_learn.cycles import LONGEST_STRIDE
from dyndis_learn.devices import DEVICE_ALLOWED, DEVICE_PATTERN
from dyndis_learn.registry import METHODS, WARMUPS
from dyndis_learn.validation import Ge, Gt, Le, Lt, Matches, validate_fields

__all__ = [
    "CONFIG_VERSION",
    "DEFAULT_LATENT_DIM",
    "DEFAULT_STEPS",
    "DEFAULT_WARMUP_STEPS",
    "MAX_THREADS",
    "RESOLVED_BY_TRAINER",
    "CycleWarmupConfig",
    "DataConfig",
    "EnvConfig",
    "EvalConfig",
    "GraphWarmupConfig",
    "LogConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RegularizerConfig",
    "SpectralWarmupConfig",
    "TrainConfig",
    "WarmupConfig",
    "migrate_config",
]

#: Version of the dict layout written by :meth:`TrainConfig.to_dict` (1: the flat layout before sections;
#: 2: sections, before ``optim.adam_beta2``, whose runs trained with Adam's 0.999; 3: before
#: ``loss.neighbour_margin_weight``, whose runs trained without that term; 4: ``model.latent_dim`` 4 by default;
#: 5: ``steps`` 600, ``model.angle_bins`` None and ``warmup.cycles.walk_steps`` 20,000 by default; 6: before
#: ``warmup.cycles.decoder_reads_targets``, whose angle-bin runs' decoders read the encodings; 7: before
#: ``model.lookup_feature_map``, whose angle-bin decoders had no feature map per bin; 8: ``model.encoder_norm``
#: ``"none"`` by default; 9: before ``model.lookup_modulation``; 10: before ``evaluation.synthesis_modes``; 11:
#: before ``warmup.cycles.longest_stride``, whose walks crossed a cycle in strides up to its length; 12:
#: ``steps`` 1,000 and ``warmup.steps`` 150 by default; 13: before ``model.angle_bins`` took a number per circle;
#: 14: ``bf16`` False by default).
CONFIG_VERSION = 15

#: ``model.latent_dim`` where ``"auto"`` has nothing to read it from (warm-ups other than the cycles one), and
#: the default of config versions 1 to 4.
DEFAULT_LATENT_DIM = 4

#: ``steps`` and ``warmup.steps`` where ``"auto"`` has nothing to read them from (warm-ups other than the cycles
#: one) or finds a small world (:func:`dyndis_learn.warmups.auto_budget`), and the defaults of config versions
#: 6 to 12: the budget of GridWorld and Shapes3D's 3-factor subset.
DEFAULT_STEPS = 1000
DEFAULT_WARMUP_STEPS = 150

#: Settings whose value asks the trainer to choose from the world (:meth:`dyndis_learn.warmups.Warmup.resolve`):
#: dotted field -> the values that ask. A run's stored config holds the number chosen.
RESOLVED_BY_TRAINER: dict[str, tuple[str, ...]] = {
    "steps": ("auto",),
    "warmup.steps": ("auto",),
    "model.latent_dim": ("auto",),
    "model.angle_bins": ("auto", "cycles", "each_cycle"),
    "warmup.cycles.walk_steps": ("auto",),
    "bf16": ("auto",),
}

#: Fields added after a version, with the value that version's runs used (a stored config of that version
#: lacks them, and a run resumed from it must go on as it started, whatever today's default).
_ADDED_AFTER: dict[int, dict[str, Any]] = {
    2: {"optim": {"adam_beta2": 0.999}},
    3: {"loss": {"neighbour_margin_weight": 0.0}},
    4: {"model": {"latent_dim": DEFAULT_LATENT_DIM}},  # defaults changed: numbers, then "auto"
    5: {"steps": 600, "model": {"angle_bins": None}, "warmup": {"cycles": {"walk_steps": 20000}}},
    6: {"warmup": {"cycles": {"decoder_reads_targets": False}}},
    7: {"model": {"lookup_feature_map": False}},
    8: {"model": {"encoder_norm": "none"}},
    9: {"model": {"lookup_modulation": False}},
    10: {"evaluation": {"synthesis_modes": 1}},
    11: {"warmup": {"cycles": {"longest_stride": None}}},
    12: {"steps": DEFAULT_STEPS, "warmup": {"steps": DEFAULT_WARMUP_STEPS}},
    14: {"bf16": False},
}

#: The declared bound of :attr:`TrainConfig.threads`. It is the same on every machine, so a config valid
#: on one is valid on all (a checkpoint of a large machine still loads on a laptop); the machine's own
#: limit, a few threads per core, is checked when a trainer is built (:func:`dyndis_learn.limits.thread_limit`).
MAX_THREADS = 256

_T = TypeVar("_T")

#: A JSON object given on the command line as one argument, e.g. ``'{"grid_shape": [5, 5]}'``.
JsonObject = Annotated[
    dict[str, Any],
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="JSON",
        instance_from_str=lambda args: _json_object(args[0]),
        is_instance=lambda value: isinstance(value, dict),
        str_from_instance=lambda value: [json.dumps(value)],
    ),
]


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object like '{{\"grid_shape\": [5, 5]}}', got {text!r}")
    return value


class _Section:
    """Validation on construction, and construction from a mapping that refuses unknown keys."""

    def __post_init__(self) -> None:
        validate_fields(self)

    @classmethod
    def from_dict(cls: type[_T], data: Mapping[str, Any]) -> _T:
        """Build from a mapping (sections may be mappings too); unknown keys raise a ValueError with a hint."""
        return _from_mapping(cls, data)


def _from_mapping(cls: type[_T], data: Any) -> _T:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__} expects a mapping of field names to values, got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        hints = {key: difflib.get_close_matches(key, list(fields), n=1) for key in unknown}
        hint = "; ".join(f"{k!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for k, m in hints.items())
        raise ValueError(f"Unknown {cls.__name__} field(s): {hint}. Allowed: {list(fields)}.")
    kwargs = {}
    for key, value in data.items():
        section = _section_type(fields[key])
        kwargs[key] = _from_mapping(section, value) if section is not None else value
    return cls(**kwargs)


def _section_type(f: dataclasses.Field) -> type | None:
    """The section class of a field whose default is a section (built with ``default_factory``)."""
    if f.default_factory is dataclasses.MISSING:
        return None
    default = f.default_factory()
    return type(default) if isinstance(default, _Section) else None


@dataclass
class EnvConfig(_Section):
    """The environment the episodes come from."""

    id: str = "DynDis/GridWorld-v0"
    """Gymnasium id of the environment (made with ``gym.make_vec``)."""
    kwargs: JsonObject = field(default_factory=dict)
    """Keyword arguments of the environment, e.g. ``{"factors": {"size": "all"}}``."""


@dataclass
class DataConfig(_Section):
    """The episodes of every SGD step outside a warm-up that brings its own."""

    episodes_per_step: Annotated[int, Ge(1)] = 4
    """Episodes ``B`` per SGD step, each from a fresh random start."""
    episode_steps: Annotated[int, Ge(1)] = 20
    """Steps ``T`` per episode: every SGD step sees ``B (T + 1)`` frames. Long episodes give the rollout and
    consistency terms a long lever arm on the angles."""


@dataclass
class ModelConfig(_Section):
    """The world model's architecture."""

    method: str = "rotation"
    """A registered method (:data:`~dyndis_learn.registry.METHODS`), which builds the model and computes its
    loss terms; ``"rotation"`` is the design's rotation model."""
    latent_dim: Annotated[int, Ge(2)] | Literal["auto"] = "auto"
    """Dimension ``n`` of the latent space; encodings live on the unit sphere S^(n-1). Needs at least two
    dimensions per factor to give every factor its own plane. ``"auto"``: with the cycles warm-up, two per
    cycle that it finds in the world (one circle each: 12 for the whole Shapes3D, 6 for Cars3D), with the
    other warm-ups :data:`DEFAULT_LATENT_DIM`; the trainer resolves it before it builds the model, and the
    run's stored config holds the number."""
    channels: Annotated[tuple[int, ...], Ge(1)] = (32, 32, 64, 64)
    """Output channels of the encoder's strided convolutions (the decoder mirrors them)."""
    kernel_size: Annotated[int, Ge(1)] = 4
    """Kernel size of every (transposed) convolution."""
    stride: Annotated[int, Ge(1)] = 2
    """Stride of every (transposed) convolution."""
    hidden_dim: Annotated[int, Ge(1)] = 256
    """Units of the fully connected hidden layer of the encoder and of the decoder."""
    parametrisation: Literal["givens", "exp"] = "givens"
    """Action matrices: ordered product of Givens rotations, or matrix exponential."""
    angle_init_scale: Annotated[float, Ge(0)] = 0.01
    """Initial angles are uniform in ``[-angle_init_scale, angle_init_scale]`` radians."""
    encoder_norm: Literal["none", "instance", "instance_after_first"] = "instance"
    """``"instance"`` normalises each encoder convolution per image and channel
    (:class:`~dyndis_learn.networks.ConvEncoder`): a factor that changes every pixel (a background colour) no
    longer drowns the others, and Cars3D's cars are recognised from views training never showed more often
    (docs/benchmarks/learn_structure.md). ``"instance_after_first"``: every convolution but the first, whose
    outputs keep how strongly each filter sees the image's colours (objects of nearly the same colour stay
    apart). ``"none"``: the original framework's plain encoder, a little faster."""
    latent_manifold: Literal["sphere", "torus"] | None = None
    """Where encodings live: ``"sphere"`` (unit norm) or ``"torus"`` (each coordinate pair a circle of radius
    ``1 / sqrt(n / 2)``: still unit norm; :class:`~dyndis_learn.model.WorldModel`). None: the warm-up's
    (``"torus"`` for ``"cycles"``, which needs it; ``"sphere"`` for the others), resolved when the config is
    made."""
    angle_bins: (
        Annotated[int, Ge(2)] | Annotated[tuple[int, ...], Ge(2)] | Literal["auto", "cycles", "each_cycle"] | None
    ) = "auto"
    """None: plain linear layers between the networks and the latent. ``M``: for a torus latent, the encoder
    gives each circle a distribution over ``M`` angles ``2 pi m / M`` (its point: their circular mean), which the
    cycles warm-up trains by cross-entropy as well; and the decoder reads each circle's angle through ``M``
    learned embeddings (interpolated between the two nearest). For factors of many values that look unrelated,
    such as Cars3D's 183 cars: a regression onto their angles learns nothing, a classification does.
    ``"cycles"`` (with the cycles warm-up): ``M`` the least common multiple of the lengths of the cycles it
    finds (1,464 for Cars3D's 4, 24 and 183), so that every value of every factor has a bin of its own: its
    encoding a class, its picture an embedding of its own; resolved by the trainer like ``latent_dim``.
    ``"each_cycle"`` (with the cycles warm-up): each circle its own number, its cycle's length times
    :data:`~dyndis_learn.warmups.BINS_PER_VALUE` (8, 48 and 366 for Cars3D): every value still a bin of its own,
    in far fewer bins than the common multiple gives (a circle no cycle turns: ``BINS_PER_VALUE``). A list of
    numbers, one per circle, sets each circle's bins directly.
    ``"auto"``: ``"cycles"`` where a cycle the warm-up finds is longer than
    :data:`~dyndis_learn.warmups.AUTO_BINS_LONGEST_CYCLE` (Cars3D's cars) or the cycles span more than
    :data:`~dyndis_learn.warmups.SMALL_WORLD_STATES` states (the whole Shapes3D, the mixed GridWorld), else
    None (and None with the other warm-ups)."""
    lookup_feature_map: bool = True
    """Models with ``angle_bins``: each bin of each circle also has a first feature map of the decoder's own,
    added after its dense layers (:class:`~dyndis_learn.networks.ConvDecoder`'s ``lookup_rows``), so a value's
    picture does not squeeze through their ``hidden_dim`` units with every other value's: Cars3D's cars are
    drawn right sooner (docs/benchmarks/learn_structure.md). No effect without angle bins."""
    lookup_modulation: bool = True
    """With ``lookup_feature_map``: each bin also scales and shifts the channels of every hidden layer of the
    decoder (FiLM; :class:`~dyndis_learn.networks.ConvDecoder`'s ``lookup_modulation``), so a value shapes the
    fine layers where Cars3D's look-alike cars differ, not only the coarse first map
    (docs/benchmarks/learn_structure.md). No effect without the feature maps."""


@dataclass
class GraphWarmupConfig(_Section):
    """The graph warm-up: explore, embed the transition graph, regress the encoder onto the embedding."""

    exploration_batches: Annotated[int, Ge(1)] = 16
    """Batches of random episodes that explore the transition graph..."""
    exploration_episodes: Annotated[int, Ge(1)] = 32
    """...each of this many episodes..."""
    exploration_steps: Annotated[int, Ge(1)] = 100
    """...of this many steps."""
    eigenmap_candidates: Annotated[int, Ge(1)] = 64
    """The Laplacian eigenvectors searched for each factor's first Fourier modes; every mode smoother than
    the roughest factor's first one must be among them
    (:func:`~dyndis_learn.transition_graph.laplacian_eigenmap`)."""
    batch_size: Annotated[int, Ge(1)] = 96
    """Explored states (drawn uniformly) per warm-up SGD step."""
    target_weight: Annotated[float, Ge(0)] = 1.0
    """Weight of ``mean ||e - y||^2``, the distance of each encoding to its state's embedding. It trains the
    encoder during the warm-up and then, on every frame of an explored state, keeps it on that map."""


@dataclass
class SpectralWarmupConfig(_Section):
    """The spectral warm-up: the encoder finds the map by SGD on transition smoothness under whitening."""

    episodes_per_step: Annotated[int, Ge(1)] = 16
    """Episodes per warm-up SGD step: many short episodes from as many random starts spread the batch over
    the state space, which the whitening penalty (estimated per batch) needs."""
    episode_steps: Annotated[int, Ge(1)] = 5
    """Steps per warm-up episode."""
    align_planes: bool = True
    """At the warm-up's end, fit every action's rotation to the encoded transitions of the batch and turn the
    latent basis onto their common planes (:mod:`dyndis_learn.alignment`); the angles start from the fit."""
    smoothness_weight: Annotated[float, Ge(0)] = 3.0
    """Weight of the transition smoothness ``mean ||e_t - e_(t-1)||^2``."""
    whitening_weight: Annotated[float, Ge(0)] = 10.0
    """Weight of the whitening penalty (zero mean, covariance ``I / n``). Both spectral terms are at full
    weight during the warm-up and fade out as the dynamics terms ramp in."""


@dataclass
class CycleWarmupConfig(_Section):
    """The cycles warm-up: read the actions' cycles from observations, place a walk on the torus by counting."""

    starts: Annotated[int, Ge(1)] = 32
    """Random starts that the distances telling states apart are averaged over
    (:func:`~dyndis_learn.cycles.discover_cycles`)."""
    max_cycle: Annotated[int, Ge(1)] = 512
    """The longest cycle looked for: an action that does not come back within this many repeats is an error."""
    walk_steps: Annotated[int, Ge(1)] | Literal["auto"] = "auto"
    """Steps of the walk whose frames the encoder is regressed on (kept in memory: ``H W C`` bytes each).
    ``"auto"``: :data:`~dyndis_learn.warmups.WALK_STEPS_PER_STATE` per state that the cycles found span,
    within :data:`~dyndis_learn.warmups.AUTO_WALK_STEPS` (20,000 for small worlds, 60,000 for Cars3D and the
    whole Shapes3D); resolved by the trainer like ``model.latent_dim``."""
    longest_stride: Annotated[int, Ge(1)] | None = LONGEST_STRIDE
    """The most repeats of one action that a stride of the walk draws (:func:`~dyndis_learn.cycles.walk_cycles`);
    None: up to the action's cycle length. Strides across a whole long cycle hold the other factors still, so the
    walk visits their settings unevenly, and the encoder misses unseen states where it saw them least."""
    batch_size: Annotated[int, Ge(1)] = 96
    """Walked frames (drawn uniformly) per warm-up SGD step."""
    target_weight: Annotated[float, Ge(0)] = 1.0
    """Weight of ``mean ||e - y||^2``, the distance of each encoding to its frame's place on the torus. It
    trains the encoder during the warm-up and then, on every frame whose image the walk saw, keeps it there."""
    decoder_reads_targets: bool = True
    """Models with ``angle_bins``: where a frame is decoded back from its encoding, the decoder's look-up reads
    the frame's place on the torus (known for every walked frame) instead of the encoding's angles; its
    coordinates stay the encoding's, so the autoencoder still trains the encoder. The look-up then learns
    each value's picture from the first step, not from the encoder's guesses while it is still learning to
    classify (Cars3D's cars: docs/benchmarks/learn_structure.md). No effect without angle bins."""


@dataclass
class WarmupConfig(_Section):
    """How the encoder gets its start, before the dynamics terms (:mod:`dyndis_learn.warmups`)."""

    kind: str = "cycles"
    """A registered warm-up (:data:`~dyndis_learn.registry.WARMUPS`): ``"cycles"`` reads the actions' cycles
    from observations and regresses the encoder onto a walk placed on the torus by counting its actions
    (scales to large worlds, indifferent to observation noise); ``"graph"`` regresses the encoder onto
    the explored transition graph's eigenmap, angles fitted on the graph; ``"spectral"`` learns that map by
    SGD, then aligns the planes; ``"none"``: no warm-up, every term from the first step (the original
    paper's recipe)."""
    steps: Annotated[int, Ge(0)] | Literal["auto"] = "auto"
    """SGD steps of the warm-up (ignored by ``"none"``). ``"auto"``: chosen with ``steps`` from the world the
    cycles warm-up finds (:func:`~dyndis_learn.warmups.auto_budget`: 150 on small worlds, 2,400 on larger
    ones, 3,600 where a cycle is longer than 64, as Cars3D's 183 cars; with ``steps`` of your own, a larger
    world's warm-up is the same share of them: a third, or half), :data:`DEFAULT_WARMUP_STEPS` with the other
    warm-ups; the run's stored config holds the number."""
    graph: GraphWarmupConfig = field(default_factory=GraphWarmupConfig)
    """Settings of the graph warm-up."""
    spectral: SpectralWarmupConfig = field(default_factory=SpectralWarmupConfig)
    """Settings of the spectral warm-up."""
    cycles: CycleWarmupConfig = field(default_factory=CycleWarmupConfig)
    """Settings of the cycles warm-up."""


@dataclass
class OptimConfig(_Section):
    """Adam and the schedules of learning rates and of the dynamics terms (:mod:`dyndis_learn.schedules`)."""

    lr: Annotated[float, Gt(0)] = 2e-3
    """Adam learning rate of the encoder and decoder."""
    adam_beta2: Annotated[float, Gt(0), Lt(1)] = 0.99
    """Adam's decay rate of the squared-gradient average (its ``betas[1]``; time constant ``1 / (1 - beta2)``
    steps). 0.99 rather than torch's 0.999: when the dynamics phase starts, its batches (windows of one walk)
    give larger, more correlated gradients than the warm-up's, and an average over 1,000 steps of the
    warm-up's small ones lets Adam's first updates be several times too large, which threw encoders off
    their map (docs/benchmarks/learn_structure.md)."""
    angle_lr: Annotated[float, Ge(0)] | None = None
    """Adam learning rate of the action angles; 0 keeps them where the warm-up put them; None: the
    warm-up's default (0 after the cycles and graph warm-ups, whose angles are exact; 1e-2 otherwise)."""
    angle_lr_ramp: bool = True
    """Ramp the angles' learning rate up with the dynamics terms (Adam normalises away a ramp of the loss
    weight alone)."""
    decay_start: Annotated[float, Ge(0), Le(1)] = 0.75
    """Fraction of ``steps`` after which both learning rates decay geometrically..."""
    final_lr_fraction: Annotated[float, Gt(0), Le(1)] = 0.01
    """...down to this fraction of their initial value at the last step."""
    dynamics_ramp_steps: Annotated[int, Ge(0)] = 75
    """Steps over which the rollout and consistency weights ramp from 0 to their values after the warm-up."""


@dataclass
class LossConfig(_Section):
    """Weights of the objective's terms (:mod:`dyndis_learn.objective`)."""

    autoencoder_weight: Annotated[float, Ge(0)] = 1.0
    """Weight of the BCE of ``decode(encode(x_t))`` against ``x_t``."""
    rollout_weight: Annotated[float, Ge(0)] = 1.0
    """Weight of the BCE of ``decode(R(a_t) ... R(a_1) encode(x_0))`` against ``x_t``."""
    neighbour_margin_weight: Annotated[float, Ge(0)] = 1.0
    """Weight of the hinge that makes each decoded frame nearer its own image than its episode neighbours'
    (:func:`~dyndis_learn.losses.neighbour_margin`); ramped in with the dynamics terms. BCE alone leaves
    factors that change few pixels (orientation, a small object's colour or size) blurred between
    neighbouring states for thousands of steps (docs/benchmarks/learn_structure.md)."""
    neighbour_margin: Annotated[float, Ge(0), Le(1)] = 0.5
    """Margin of that hinge: 1 asks for a perfect picture along every neighbour's difference, 0 only for a
    picture nearer its own image than the neighbour's."""
    split_decoding: bool = True
    """Decode each frame ``t >= 1`` once, from the rollout or from its encoding at random (half the decoder
    cost); False decodes both."""
    consistency_weight: Annotated[float, Ge(0)] = 1.0
    """Weight of the latent consistency between rotated and encoded frames."""
    multistep_weight: Annotated[float, Ge(0)] = 0.3
    """Weight of the all-pairs (long-horizon) consistency relative to the one-step consistency."""
    uniformity_weight: Annotated[float, Ge(0)] = 0.1
    """Weight of the uniformity term that spreads encodings over the sphere (prevents collapse)."""
    uniformity_temperature: Annotated[float, Gt(0)] = 2.0
    """Temperature ``t`` of the uniformity term ``log mean exp(-t ||e_i - e_j||^2)``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.autoencoder_weight == 0 and self.rollout_weight == 0:
            raise ValueError(
                "LossConfig: autoencoder_weight and rollout_weight cannot both be 0 (nothing trains the decoder)."
            )


@dataclass
class RegularizerConfig(_Section):
    """The entanglement regulariser on the action angles (:mod:`dyndis_learn.regularizers`)."""

    target: Literal["min", "max", "value"] = "min"
    """``"min"`` (one plane per action), ``"max"`` or ``"value"``."""
    value: Annotated[float, Ge(0)] = 0.0
    """Target entanglement for ``target="value"``."""
    schedule: Literal["constant", "linear"] = "linear"
    """``"constant"`` (``weight`` from the first step) or ``"linear"`` (0 until ``delay``, then a ramp to
    ``weight`` over ``ramp`` steps)."""
    weight: Annotated[float, Ge(0)] = 0.3
    """Final weight of the regulariser."""
    delay: Annotated[int, Ge(0)] | None = None
    """Steps before the linear ramp starts; None: the end of the warm-up."""
    ramp: Annotated[int, Ge(0)] | None = None
    """Length of the linear ramp in steps; None: ``optim.dynamics_ramp_steps``."""


@dataclass
class EvalConfig(_Section):
    """How a trained model is evaluated and reported."""

    episodes: Annotated[int, Ge(1)] = 32
    """Evaluation episodes (fresh random starts, random actions) for the rollout error and the closures."""
    horizon: Annotated[int, Ge(1)] = 500
    """Rollout length ``k_max``: the BCE is reported for every step ``k = 1 .. horizon``."""
    seed: Annotated[int, Ge(0)] = 1_000_003
    """Seed of the evaluation episodes (kept apart from the training stream)."""
    gif_steps: Annotated[int, Ge(1)] = 120
    """Frames of the ground-truth vs reconstruction GIF."""
    bce_ratio_limit: Annotated[float, Gt(0)] = 1.2
    """Criterion: rollout BCE at ``k = horizon`` at most this times the BCE at ``k = 1``."""
    share_threshold: Annotated[float, Ge(0), Le(1)] = 0.99
    """Criterion: share of ``sum(theta^2)`` that every action must hold in its dominant plane."""
    angle_tolerance: Annotated[float, Gt(0)] = 0.01
    """Criterion: relative distance of the dominant angle to the nearest ``2 pi k / N``."""
    mean_image_margin: Annotated[float, Gt(0)] = 0.5
    """Criterion: the rollout's BCE at ``k = horizon`` above the frames' own entropy at most this share of the
    mean image's (a model that predicts a constant image fails)."""
    probe_threshold: Annotated[float, Ge(0), Le(1)] = 0.99
    """Criterion: held-out R^2 of the circular probe of every active factor at least this."""
    decoder_threshold: Annotated[float, Ge(0), Le(1)] = 0.99
    """Criterion: share of decoded reconstructions and imagined frames nearest their own state's image."""
    synthesis_modes: Annotated[int, Ge(1)] | Literal["auto"] = "auto"
    """Which encodings of images the report judges (the probes, the pictures, the rollouts' first latents):
    ``1`` the encoder's own; more, the decoder-checked encodings of an angle-bin model over this many modes per
    circle where the encoder hesitates (:meth:`~dyndis_learn.model.WorldModel.encode_by_synthesis`; the
    planner's by default); ``"auto"`` :data:`~dyndis_learn.model.DEFAULT_SYNTHESIS_MODES` with angle bins, else
    1. With checked encodings the report also gives the encoder's own probes."""


@dataclass
class LogConfig(_Section):
    """What a run writes while it trains (:mod:`dyndis_learn.run_log`)."""

    log_every: Annotated[int, Ge(1)] = 10
    """Write a row of the CSV (and TensorBoard) log every this many steps."""
    checkpoint_every: Annotated[int, Ge(0)] = 200
    """Write a checkpoint every this many steps (0: only at the end of training)."""
    tensorboard: bool = False
    """Also log to TensorBoard (needs the ``tensorboard`` extra)."""


@dataclass
class TrainConfig(_Section):
    """Everything a training run needs; the defaults are the recipe for the DynDis worlds (GridWorld 5x5 first).

    The objective (:mod:`dyndis_learn.objective`) is autoencoding BCE on every frame throughout; during the
    warm-up the warm-up's own terms (:mod:`dyndis_learn.warmups`); then, ramped in, the rollout BCE of the
    design (decode the rotated first frame), the latent consistency between rotated and encoded frames,
    uniformity, and the entanglement regulariser. :mod:`dyndis_learn.trainer` walks through one run.
    """

    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment."""
    seed: Annotated[int, Ge(0)] = 0
    """Seed of the initial weights, the training episodes and their random actions."""
    steps: Annotated[int, Ge(1)] | Literal["auto"] = "auto"
    """Number of SGD steps. ``"auto"``: chosen from the world the cycles warm-up finds, before the model is
    built (:func:`~dyndis_learn.warmups.auto_budget`): 1,000 where its cycles span at most 2,000 states
    (GridWorld, Shapes3D's 3-factor subset, with or without observation noise: their structure and encoder
    hold from the first check after the warm-up, their decoded pictures from 800-850 steps), 7,200 on larger
    worlds (the whole Shapes3D and Cars3D: every criterion in 3 of 3 seeds where measured; 15-36 minutes on 2
    CPU cores); :data:`DEFAULT_STEPS` with the other warm-ups. The run's stored config holds the number. A run
    too short for its world ends with a report that says which criteria failed and what to change
    (:mod:`dyndis_learn.remedies`)."""
    threads: Annotated[int, Ge(0), Le(MAX_THREADS)] = 2
    """Torch intra-op threads (0 leaves torch's default). At most 256, and at most 4 per core of the machine
    that trains (a run restored on a smaller machine uses that many, with a warning)."""
    device: Annotated[str, Matches(DEVICE_PATTERN, DEVICE_ALLOWED)] = "auto"
    """Where the model trains: ``"auto"`` (CUDA where available, else the CPU), ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"``. Only the spelling is checked here (a config stays valid on every machine); a CUDA device
    the machine lacks is refused when the trainer is built. A checkpoint loads on another device with
    ``Learner.load(path, device=...)``."""
    bf16: bool | Literal["auto"] = "auto"
    """Mixed precision: run the encoder and decoder of the objective under ``torch.autocast`` in bfloat16
    (the losses, rotations and optimiser stay float32). ``"auto"``: chosen from the world and the device
    (:func:`~dyndis_learn.warmups.auto_bf16`): bfloat16 on a world of more than
    :data:`~dyndis_learn.warmups.SMALL_WORLD_STATES` states, as the cycles warm-up finds it, trained on a CPU that
    computes it natively (:func:`~dyndis_learn.devices.computes_bf16`); float32 elsewhere. The run's stored
    config holds the choice."""
    retain_cpu_memory: bool = True
    """Training on the CPU: keep the memory of freed tensors in the process for the next step's instead of
    giving it back to the system and faulting it in again (:func:`dyndis_learn.devices.retain_freed_memory`;
    glibc only, process-wide). It does not change results; the process keeps the memory of its busiest step."""
    data: DataConfig = field(default_factory=DataConfig)
    """The episodes of each SGD step."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The world model."""
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    """The warm-up."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimisation and schedules."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss weights."""
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    """The entanglement regulariser."""
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation and report settings."""
    logging: LogConfig = field(default_factory=LogConfig)
    """Logs and checkpoints."""

    def __post_init__(self) -> None:
        super().__post_init__()
        METHODS.check("ModelConfig.method", self.model.method)
        WARMUPS.check("WarmupConfig.kind", self.warmup.kind)
        manifold = self.latent_manifold
        if self.warmup.kind == "cycles" and manifold != "torus":
            raise ValueError(
                f"warmup.kind='cycles' needs model.latent_manifold='torus' (one circle per cycle), got {manifold!r}."
            )
        if self.model.angle_bins in ("cycles", "each_cycle") and self.warmup.kind != "cycles":
            raise ValueError(
                f"model.angle_bins={self.model.angle_bins!r} reads the cycles warm-up's cycles: it needs "
                f"warmup.kind='cycles', got "
                f"{self.warmup.kind!r} (or set model.angle_bins to a number)."
            )
        if self.model.angle_bins not in (None, "auto") and manifold != "torus":
            raise ValueError(
                f"model.angle_bins needs model.latent_manifold='torus' (angles of circles), got {manifold!r}."
            )
        bins, dim = self.model.angle_bins, self.model.latent_dim
        if isinstance(bins, tuple) and dim != "auto" and len(bins) != dim // 2:
            raise ValueError(
                f"model.angle_bins must give one number of bins per circle ({dim // 2} for model.latent_dim {dim}), "
                f"got {len(bins)}: {list(bins)!r}."
            )
        if manifold == "torus" and self.model.latent_dim != "auto" and self.model.latent_dim % 2:
            raise ValueError(
                f"model.latent_dim must be even for a torus latent (pairs of coordinates), got {self.model.latent_dim}."
            )
        if self.warmup.kind == "spectral" and self.warmup.spectral.align_planes and manifold == "torus":
            raise ValueError(
                "warmup.spectral.align_planes turns the latent basis, which model.latent_manifold='torus' fixes: "
                "set one of them differently."
            )
        candidates = self.warmup.graph.eigenmap_candidates
        latent_dim = DEFAULT_LATENT_DIM if self.model.latent_dim == "auto" else self.model.latent_dim
        if self.warmup.kind == "graph" and candidates < latent_dim:
            raise ValueError(
                f"WarmupConfig.graph.eigenmap_candidates must be >= model.latent_dim ({latent_dim}), got {candidates}."
            )

    @property
    def built_model(self) -> ModelConfig:
        """The model section as the model is built: ``latent_manifold`` None resolved by the warm-up's kind.

        Raises:
            ValueError: If ``model.latent_dim`` or ``model.angle_bins`` still asks the trainer to choose
                (:data:`RESOLVED_BY_TRAINER`): it resolves them from the world first
                (:meth:`dyndis_learn.warmups.Warmup.resolve`; its config holds the numbers).
        """
        for setting, askings in RESOLVED_BY_TRAINER.items():
            section, _, name = setting.partition(".")
            asking = getattr(self.model, name) if section == "model" else None
            if asking in askings:
                raise ValueError(
                    f"{setting}={asking!r} is resolved by the trainer from the world (its config holds the number); "
                    f"build the model from Trainer(config).config, or set {setting}."
                )
        return dataclasses.replace(self.model, latent_manifold=self.latent_manifold)

    @property
    def latent_manifold(self) -> str:
        """``model.latent_manifold``, or where None the warm-up's: ``"torus"`` for ``"cycles"``, else ``"sphere"``."""
        if self.model.latent_manifold is not None:
            return self.model.latent_manifold
        return "torus" if self.warmup.kind == "cycles" else "sphere"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists), with the layout's ``version``."""
        return {"version": CONFIG_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping, e.g. a JSON or YAML file: any subset of the fields, older layouts migrated.

        Raises:
            ValueError: For an unknown field (with a suggestion) or a value a field does not allow.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"TrainConfig expects a mapping of field names to values, got {data!r}.")
        return _from_mapping(cls, migrate_config(data))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed: top-level fields, or ``section={"field": value}`` dicts merged in."""
        return TrainConfig.from_dict(_merge(self.to_dict(), changes))


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        current = merged.get(key)
        merged[key] = _merge(current, value) if isinstance(current, dict) and isinstance(value, Mapping) else value
    return merged


#: Where each field of the flat (version 1) layout lives now: old name -> (section path, new name).
_FLAT_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "env_id": (("env",), "id"),
    "env_kwargs": (("env",), "kwargs"),
    "episodes_per_step": (("data",), "episodes_per_step"),
    "episode_steps": (("data",), "episode_steps"),
    "warmup": (("warmup",), "kind"),
    "warmup_steps": (("warmup",), "steps"),
    "exploration_batches": (("warmup", "graph"), "exploration_batches"),
    "exploration_episodes": (("warmup", "graph"), "exploration_episodes"),
    "exploration_steps": (("warmup", "graph"), "exploration_steps"),
    "eigenmap_candidates": (("warmup", "graph"), "eigenmap_candidates"),
    "graph_batch_size": (("warmup", "graph"), "batch_size"),
    "target_weight": (("warmup", "graph"), "target_weight"),
    "warmup_episodes_per_step": (("warmup", "spectral"), "episodes_per_step"),
    "warmup_episode_steps": (("warmup", "spectral"), "episode_steps"),
    "align_planes": (("warmup", "spectral"), "align_planes"),
    "smoothness_weight": (("warmup", "spectral"), "smoothness_weight"),
    "whitening_weight": (("warmup", "spectral"), "whitening_weight"),
    "lr": (("optim",), "lr"),
    "angle_lr": (("optim",), "angle_lr"),
    "angle_lr_ramp": (("optim",), "angle_lr_ramp"),
    "decay_start": (("optim",), "decay_start"),
    "final_lr_fraction": (("optim",), "final_lr_fraction"),
    "dynamics_ramp_steps": (("optim",), "dynamics_ramp_steps"),
    "autoencoder_weight": (("loss",), "autoencoder_weight"),
    "rollout_weight": (("loss",), "rollout_weight"),
    "split_decoding": (("loss",), "split_decoding"),
    "consistency_weight": (("loss",), "consistency_weight"),
    "multistep_weight": (("loss",), "multistep_weight"),
    "uniformity_weight": (("loss",), "uniformity_weight"),
    "uniformity_temperature": (("loss",), "uniformity_temperature"),
    "log_every": (("logging",), "log_every"),
    "checkpoint_every": (("logging",), "checkpoint_every"),
    "tensorboard": (("logging",), "tensorboard"),
}


def _is_flat(key: str, value: Any) -> bool:
    """Whether ``key: value`` is a field of the flat layout (``warmup`` was a string there, a section now)."""
    return key in _FLAT_FIELDS and not (key == "warmup" and isinstance(value, Mapping))


def migrate_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """Upgrade a stored config dict to the current layout (:data:`CONFIG_VERSION`); returns a new dict.

    Version 1 (checkpoints and config files before the sections; it has no ``version`` key) kept most
    fields at the top level: each moves to its section (``env_id`` -> ``env.id``, ``warmup`` ->
    ``warmup.kind``, ``lr`` -> ``optim.lr``, ...). A field added since a dict's version gets the value
    that version's runs used (``optim.adam_beta2`` 0.999 before version 3, ``loss.neighbour_margin_weight``
    0 before version 4), and so does a field whose default changed (``model.latent_dim`` 4 before version 5;
    ``steps`` 600, ``model.angle_bins`` None and ``warmup.cycles.walk_steps`` 20,000 before version 6;
    ``warmup.cycles.decoder_reads_targets`` False before version 7, ``model.lookup_feature_map`` False before
    version 8, ``model.encoder_norm`` ``"none"`` before version 9, ``model.lookup_modulation`` False before
    version 10, ``evaluation.synthesis_modes`` 1 before version 11, ``warmup.cycles.longest_stride`` None
    before version 12, ``steps`` 1,000 and ``warmup.steps`` 150 before version 13, ``bf16`` False before
    version 15), so a stored run resumes as it started.
    A dict of the current version is returned as it is, less its ``version`` key.

    Raises:
        ValueError: For a version this code does not know.
    """
    data = copy.deepcopy(dict(data))
    version = data.pop("version", None)
    if version == CONFIG_VERSION:
        return data
    if version is not None and version not in range(1, CONFIG_VERSION):
        raise ValueError(
            f"Config version {version!r} is unknown; this dyndis-learn reads versions 1 to {CONFIG_VERSION}."
        )
    if version is None and not any(_is_flat(key, value) for key, value in data.items()):
        return data  # a partial dict in the current layout (e.g. a config file without a version)
    sectioned = data if version is not None and version >= 2 else _sections(data)
    for after, fields in _ADDED_AFTER.items():
        if after >= (version or 1):
            sectioned = _with_defaults(sectioned, fields)
    return sectioned


def _with_defaults(stored: Any, defaults: Mapping[str, Any]) -> Any:
    """``stored`` (a config dict or a section of one) with ``defaults`` where it lacks them, at any depth."""
    if not isinstance(stored, Mapping):
        return stored  # the section's own check says what is wrong
    merged = dict(stored)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, Mapping):
            merged[key] = _with_defaults(merged[key], value)
    return merged


def _sections(data: dict[str, Any]) -> dict[str, Any]:
    """The flat (version 1) layout moved into sections."""
    migrated: dict[str, Any] = {}
    for key, value in data.items():
        if not _is_flat(key, value):
            migrated[key] = value  # seed, steps, threads, model, regularizer, evaluation, or unknown (refused later)
            continue
        path, name = _FLAT_FIELDS[key]
        section = migrated
        for part in path:
            section = section.setdefault(part, {})
        section[name] = value
    return migrated
