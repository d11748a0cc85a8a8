"""Evaluation of a trained world model: long-rollout error and the learnt group structure.

Everything is measured on fresh evaluation episodes (random starts, random actions) from a seed kept
apart from training. The environment's ground truth is used here only, and only through its documented
contract: ``env.action_effects`` (one :class:`dyndis_envs.ActionEffect` per action: the factor it moves,
the direction, the factor's cycle length ``N`` and the inverse action). Environments without it get the
figures that need no ground truth.

Per action the figures are: the dominant plane and its share of ``sum(theta^2)``; the dominant angle in
units of ``2 pi / N``; whether it is a faithful ``N``-cycle angle ``2 pi k / N`` with ``gcd(k, N) = 1``
(within a relative tolerance); the cycle closure ``||R^N z - z||`` on encoded states; the inverse error
``||R(a) R(inverse(a)) - I||_F``. Per run: whether different factors use disjoint sets of coordinates, and
the rollout BCE for every step ``k`` with a 95% interval over episodes.

The results are frozen dataclasses (:class:`Evaluation` and its parts); ``to_dict()`` gives the
``report.json`` keys documented in the README and :meth:`Evaluation.from_dict` reads them back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from dyndis_learn.config import EvalConfig
from dyndis_learn.limits import available_memory
from dyndis_learn.losses import frame_bce
from dyndis_learn.metrics import circular_probe
from dyndis_learn.model import WorldModel, frames_to_float
from dyndis_learn.regularizers import dominant_share
from dyndis_learn.rollouts import EpisodeBatch, RolloutCollector
from dyndis_learn.rotations import matrix_power, plane_pairs
from dyndis_learn.validation import check_int

if TYPE_CHECKING:
    from dyndis_envs import ActionEffect

__all__ = [
    "CRITERIA",
    "ActionStructure",
    "Criteria",
    "EvalEpisodes",
    "Evaluation",
    "FactorStructure",
    "Fidelity",
    "GroupStructure",
    "RolloutError",
    "TrainingSummary",
    "check_evaluation_memory",
    "collect_eval_episodes",
    "dynamics_trained",
    "evaluate_model",
    "evaluation_memory",
    "fidelity",
    "format_summary",
    "mean_image_bce",
    "rollout_bce",
    "structure",
]

_EPISODES_PER_COLLECT = 8  # evaluation episodes collected at once (bounds memory for long horizons)
_CHUNK_FRAMES = 1024  # frames decoded per pass by rollout_bce
_FACTOR_BYTES = 64  # per frame for the factors' values (room for 8 int64 factors)
_TENSOR_OVERHEAD = 512  # bytes of a small tensor object (the rollout keeps two per step)

#: Fidelity states: every state of the environment up to this many, else a uniform sample of
#: :data:`SAMPLE_STATES` states drawn with ``EvalConfig.seed``.
GRID_STATES = 5_000
SAMPLE_STATES = 2_000
#: Imagined frames judged by ``decoder_fidelity``: every step ``k = 1 .. min(IMAGINED_STEPS, horizon)``.
IMAGINED_STEPS = 100
#: Default thresholds of the criteria that judge the trained model (``EvalConfig``'s; reports written before
#: they existed are read with these).
PROBE_THRESHOLD = EvalConfig.probe_threshold
DECODER_THRESHOLD = EvalConfig.decoder_threshold
MEAN_IMAGE_MARGIN = EvalConfig.mean_image_margin
_CANDIDATE_BYTES = 64 * 2**20  # rendered candidate images held at once by the nearest-image test


# -- typed results ---------------------------------------------------------------------------------------


def _fields(data: Any, owner: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
    """The ``required`` and present ``optional`` keys of mapping ``data``; other keys are ignored."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{owner}.from_dict expects a mapping, got {type(data).__name__}.")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{owner}.from_dict: missing key(s) {missing}; got {sorted(data)}.")
    return {key: data[key] for key in (*required, *optional) if key in data}


@dataclass(frozen=True)
class RolloutError:
    """Rollout BCE per step ``k``: mean and 95% interval over ``episodes`` episodes (all of length K)."""

    k: tuple[int, ...]
    """The evaluated steps."""
    mean: tuple[float, ...]
    """Mean BCE at each step."""
    ci95_low: tuple[float, ...]
    """Lower end of the 95% interval of the mean."""
    ci95_high: tuple[float, ...]
    """Upper end of the 95% interval of the mean."""
    episodes: int
    """Number of episodes averaged."""

    def mean_at(self, k: int) -> float | None:
        """The mean BCE at step ``k``, or None if ``k`` was not evaluated."""
        return dict(zip(self.k, self.mean, strict=True)).get(k)

    def to_dict(self) -> dict[str, Any]:
        """``{"k", "mean", "ci95_low", "ci95_high", "episodes"}`` with lists."""
        return {
            "k": list(self.k),
            "mean": list(self.mean),
            "ci95_low": list(self.ci95_low),
            "ci95_high": list(self.ci95_high),
            "episodes": self.episodes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutError:
        """Inverse of :meth:`to_dict`."""
        d = _fields(data, cls.__name__, ("k", "mean", "ci95_low", "ci95_high", "episodes"))
        return cls(
            tuple(int(k) for k in d["k"]),
            tuple(float(v) for v in d["mean"]),
            tuple(float(v) for v in d["ci95_low"]),
            tuple(float(v) for v in d["ci95_high"]),
            int(d["episodes"]),
        )


_EFFECT_KEYS = (
    "factor",
    "direction",
    "cycle_length",
    "angle_over_unit",
    "nearest_k",
    "angle_relative_error",
    "faithful",
    "cycle_closure_mean",
    "cycle_closure_max",
    "inverse_error",
)


@dataclass(frozen=True)
class ActionStructure:
    """The learnt rotation of one action.

    The fields after ``angles`` are None unless the environment publishes what the action does
    (``env.action_effects``); then they are all set.
    """

    action: int
    """The action's index."""
    dominant_plane: tuple[int, int]
    """The plane ``(i, j)`` with the largest angle."""
    plane_share: float
    """Share of ``sum(theta^2)`` held by the dominant plane."""
    angle: float
    """The dominant angle (rad), wrapped to ``[-pi, pi]``."""
    angles: tuple[float, ...]
    """The angle in every plane (rad), in :func:`~dyndis_learn.rotations.plane_pairs` order."""
    factor: str | None = None
    """Name of the factor the action moves."""
    direction: int | None = None
    """``+1`` or ``-1``: the direction along the factor's cycle."""
    cycle_length: int | None = None
    """``N``: the factor's number of values."""
    angle_over_unit: float | None = None
    """The dominant angle in units of ``2 pi / N``."""
    nearest_k: int | None = None
    """The integer nearest ``angle_over_unit``."""
    angle_relative_error: float | None = None
    """``|angle_over_unit - k| / |k|`` (inf for ``k = 0``)."""
    faithful: bool | None = None
    """Whether the angle is a faithful ``N``-cycle angle ``2 pi k / N``, ``gcd(k, N) = 1``, within tolerance."""
    cycle_closure_mean: float | None = None
    """Mean ``||R^N z - z||`` over encoded states."""
    cycle_closure_max: float | None = None
    """Largest ``||R^N z - z||`` over encoded states."""
    inverse_error: float | None = None
    """``||R(a) R(inverse(a)) - I||_F``."""

    def __post_init__(self) -> None:
        given = [getattr(self, key) is not None for key in _EFFECT_KEYS]
        if any(given) and not all(given):
            missing = [key for key, g in zip(_EFFECT_KEYS, given, strict=True) if not g]
            raise ValueError(f"ActionStructure: the effect fields come all or none; missing {missing}.")

    def to_dict(self) -> dict[str, Any]:
        """The ``actions[i]`` entry of ``report.json``; the effect keys only when :attr:`factor` is known."""
        entry: dict[str, Any] = {
            "action": self.action,
            "dominant_plane": list(self.dominant_plane),
            "plane_share": self.plane_share,
            "angle": self.angle,
            "angles": list(self.angles),
        }
        if self.factor is not None:
            entry.update({key: getattr(self, key) for key in _EFFECT_KEYS})
        return entry

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionStructure:
        """Inverse of :meth:`to_dict`."""
        d = _fields(data, cls.__name__, ("action", "dominant_plane", "plane_share", "angle", "angles"), _EFFECT_KEYS)
        i, j = d.pop("dominant_plane")
        return cls(
            **{
                **d,
                "dominant_plane": (int(i), int(j)),
                "angles": tuple(float(v) for v in d["angles"]),
            }
        )


@dataclass(frozen=True)
class FactorStructure:
    """One factor of the environment and the latent coordinates its actions rotate."""

    name: str
    """The factor's name."""
    cycle_length: int
    """``N``: its number of values."""
    actions: tuple[int, ...]
    """The actions that move it (those whose effect names it)."""
    coordinates: tuple[int, ...]
    """The latent axes of its actions' dominant planes, sorted."""

    def to_dict(self) -> dict[str, Any]:
        """The ``factors[j]`` entry of ``report.json``."""
        return {
            "name": self.name,
            "cycle_length": self.cycle_length,
            "actions": list(self.actions),
            "coordinates": list(self.coordinates),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FactorStructure:
        """Inverse of :meth:`to_dict`."""
        d = _fields(data, cls.__name__, ("name", "cycle_length", "actions", "coordinates"))
        return cls(str(d["name"]), int(d["cycle_length"]), tuple(d["actions"]), tuple(d["coordinates"]))


@dataclass(frozen=True)
class Fidelity:
    """How faithfully the model encodes and draws the environment's states.

    The states come from the environment's evaluation contract (``factor_space``, ``render_states``): every
    state when there are at most :data:`GRID_STATES`, else :data:`SAMPLE_STATES` states drawn uniformly with
    ``EvalConfig.seed``. A decoded image is *right* when no candidate image is nearer to it (squared L2 on
    uint8 pixels; ties count as right) than its own state's image. The candidates are the images of every
    state (``candidates="all_states"``, with the full grid) or, with a sample, those of every state that
    differs from the true state in one factor (``"one_factor_neighbours"``: each factor through all its values).
    """

    states: int
    """Number of states encoded and reconstructed."""
    grid: bool
    """Whether they are every state (True) or a uniform seeded sample (False)."""
    candidates: str
    """``"all_states"`` or ``"one_factor_neighbours"``."""
    factors: tuple[str, ...]
    """The active factors (more than one value), in factor order."""
    probe_r2: tuple[float, ...]
    """Per active factor, the held-out R^2 of :func:`~dyndis_learn.metrics.circular_probe` on the encodings."""
    reconstruction_rate: float
    """Share of the states whose decoded reconstruction is nearest to its own image."""
    imagined_steps: int
    """``K = min(100, horizon)``: imagined frames ``k = 1 .. K`` of every evaluation episode are judged."""
    imagined_rate: float | None
    """Share of those imagined frames nearest to their true state's image (None without ``info["factors"]``)."""
    imagined_rate_last: float | None
    """The same share at ``k = K`` alone."""

    def to_dict(self) -> dict[str, Any]:
        """The ``fidelity`` entry of ``report.json``."""
        return {
            "states": self.states,
            "grid": self.grid,
            "candidates": self.candidates,
            "factors": list(self.factors),
            "probe_r2": list(self.probe_r2),
            "reconstruction_rate": self.reconstruction_rate,
            "imagined_steps": self.imagined_steps,
            "imagined_rate": self.imagined_rate,
            "imagined_rate_last": self.imagined_rate_last,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fidelity:
        """Inverse of :meth:`to_dict`."""
        keys = [f.name for f in dataclasses.fields(cls)]
        d = _fields(data, cls.__name__, keys)
        return cls(
            **{
                **d,
                "factors": tuple(str(name) for name in d["factors"]),
                "probe_r2": tuple(float(v) for v in d["probe_r2"]),
            }
        )


def _criterion() -> Any:
    return dataclasses.field(metadata={"criterion": True})


@dataclass(frozen=True)
class Criteria:
    """The quality criteria: each check is True, False, or None when it cannot be judged.

    :attr:`all` holds only when every check is True (a check that cannot be judged does not pass).
    """

    single_plane: bool = _criterion()
    """Every action holds at least ``share_threshold`` of ``sum(theta^2)`` in one plane."""
    faithful_angles: bool | None = _criterion()
    """Every action's dominant angle is a faithful ``N``-cycle angle (None without action effects)."""
    disjoint_planes: bool | None = _criterion()
    """Different factors rotate disjoint sets of coordinates (None without action effects)."""
    rollout_stable: bool | None = _criterion()
    """Rollout BCE at ``k = horizon`` at most ``bce_ratio_limit`` times that at ``k = 1``, and its excess over
    the frames' own entropy at most ``mean_image_margin`` times that of the mean image (None if either step was
    not evaluated, the BCE at ``k = 1`` is 0 or the mean image is as good as the frames themselves)."""
    encoder_fidelity: bool | None = _criterion()
    """The circular probe's held-out R^2 is at least ``probe_threshold`` for every active factor (None without
    the environment's evaluation contract)."""
    decoder_fidelity: bool | None = _criterion()
    """Decoded reconstructions of the fidelity states and imagined frames ``k = 1 .. 100`` of the evaluation
    episodes are nearest, in pixels, to their own state's image in at least ``decoder_threshold`` of cases
    (None without the evaluation contract or the episodes' factors)."""
    dynamics_trained: bool | None = _criterion()
    """The dynamics phase ran to the end of its ramp: the last logged ``dynamics_weight`` is 1 (None without a
    training history)."""
    share_threshold: float
    """Threshold of ``single_plane``."""
    angle_tolerance: float
    """Relative tolerance of ``faithful_angles``."""
    bce_ratio_limit: float
    """Limit of ``rollout_stable``."""
    mean_image_margin: float = MEAN_IMAGE_MARGIN
    """Limit of ``rollout_stable``: rollout excess BCE over the mean image's excess BCE."""
    probe_threshold: float = PROBE_THRESHOLD
    """Threshold of ``encoder_fidelity``."""
    decoder_threshold: float = DECODER_THRESHOLD
    """Threshold of ``decoder_fidelity``."""

    @property
    def all(self) -> bool:
        """Whether every check holds."""
        return all(value is True for value in self.checks().values())

    def checks(self) -> dict[str, bool | None]:
        """``{name: value}`` of every check, in :data:`CRITERIA` order."""
        return {name: getattr(self, name) for name in CRITERIA}

    def to_dict(self) -> dict[str, Any]:
        """The ``criteria`` entry of ``report.json``: the checks, the thresholds, then ``all``."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "all": self.all}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Criteria:
        """Inverse of :meth:`to_dict`; a stored ``all`` must agree with the checks.

        A report written before ``encoder_fidelity``, ``decoder_fidelity`` and ``dynamics_trained`` existed
        reads with those checks None (so ``all`` is False) and its stored ``all`` is not checked.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        d = _fields(data, cls.__name__, [n for n in names if n not in _LATER_KEYS], _LATER_KEYS)
        criteria = cls(**{**{name: None for name in _LATER_CRITERIA}, **d})
        legacy = any(name not in data for name in _LATER_CRITERIA)
        if not legacy and "all" in data and data["all"] != criteria.all:
            raise ValueError(f"Criteria.from_dict: stored all={data['all']!r} contradicts the checks {d}.")
        return criteria


#: Criteria (and their thresholds) that reports written before them lack.
_LATER_CRITERIA = ("encoder_fidelity", "decoder_fidelity", "dynamics_trained")
_LATER_KEYS = (*_LATER_CRITERIA, "mean_image_margin", "probe_threshold", "decoder_threshold")


#: The names of the quality checks, in report order (the fields of :class:`Criteria` marked as criteria).
CRITERIA: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Criteria) if f.metadata.get("criterion"))


@dataclass(frozen=True)
class TrainingSummary:
    """How the evaluated model was trained (filled in by the caller)."""

    steps: int
    """SGD steps taken."""
    train_seconds: float
    """Wall time of the SGD steps."""
    config: dict[str, Any]
    """The run's configuration (``TrainConfig.to_dict()``)."""

    def to_dict(self) -> dict[str, Any]:
        """The ``training`` entry of ``report.json``."""
        return {"steps": self.steps, "train_seconds": self.train_seconds, "config": self.config}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSummary:
        """Inverse of :meth:`to_dict`."""
        d = _fields(data, cls.__name__, ("steps", "train_seconds", "config"))
        return cls(int(d["steps"]), float(d["train_seconds"]), dict(d["config"]))


@dataclass(frozen=True)
class Evaluation:
    """Every figure of an evaluation; :meth:`to_dict` gives the ``report.json`` keys (see the README)."""

    env_id: str
    """The environment's id."""
    env_kwargs: dict[str, Any]
    """Its keyword arguments."""
    latent_dim: int
    """The model's latent dimension ``n``."""
    n_actions: int
    """The number of actions."""
    rollout_bce: RolloutError
    """Rollout BCE per step."""
    rollout_bce_ratio: float | None
    """BCE at ``k = horizon`` over BCE at ``k = 1`` (None if either was not evaluated or BCE(1) is 0)."""
    horizon: int
    """The rollout length ``k_max``."""
    actions: tuple[ActionStructure, ...]
    """Per action, in action order."""
    factors: tuple[FactorStructure, ...] | None
    """Per factor, in order of their first action (None without action effects)."""
    disjoint_planes: bool | None
    """Whether different factors rotate disjoint coordinates (None without action effects)."""
    criteria: Criteria
    """The quality criteria."""
    training: TrainingSummary | None = None
    """How the model was trained, when the caller says (``dataclasses.replace(evaluation, training=...)``)."""
    mean_image_bce: float | None = None
    """BCE of the mean frame of the evaluation episodes against their frames at ``k = horizon``."""
    frame_entropy: float | None = None
    """BCE of the frames at ``k = horizon`` against themselves (the floor of any prediction)."""
    mean_image_ratio: float | None = None
    """``(BCE(horizon) - frame_entropy) / (mean_image_bce - frame_entropy)``: the rollout's excess BCE as a
    share of the mean image's (None if ``k = horizon`` was not evaluated or the mean image has no excess)."""
    fidelity: Fidelity | None = None
    """Encoder and decoder fidelity (None without the environment's evaluation contract)."""
    dynamics_weight: float | None = None
    """The last logged ``dynamics_weight`` of the training history (None without one)."""

    def to_dict(self) -> dict[str, Any]:
        """The evaluation keys of ``report.json`` (plus ``training`` when set), JSON-serialisable."""
        data: dict[str, Any] = {
            "env_id": self.env_id,
            "env_kwargs": dict(self.env_kwargs),
            "latent_dim": self.latent_dim,
            "n_actions": self.n_actions,
            "rollout_bce": self.rollout_bce.to_dict(),
            "rollout_bce_ratio": self.rollout_bce_ratio,
            "horizon": self.horizon,
            "actions": [a.to_dict() for a in self.actions],
            "disjoint_planes": self.disjoint_planes,
            "factors": None if self.factors is None else [f.to_dict() for f in self.factors],
            "mean_image_bce": self.mean_image_bce,
            "frame_entropy": self.frame_entropy,
            "mean_image_ratio": self.mean_image_ratio,
            "fidelity": None if self.fidelity is None else self.fidelity.to_dict(),
            "dynamics_weight": self.dynamics_weight,
            "criteria": self.criteria.to_dict(),
        }
        if self.training is not None:
            data["training"] = self.training.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict`; also reads a ``report.json`` (its report-only keys are ignored)."""
        d = _fields(
            data,
            cls.__name__,
            (
                "env_id",
                "env_kwargs",
                "latent_dim",
                "n_actions",
                "rollout_bce",
                "rollout_bce_ratio",
                "horizon",
                "actions",
                "disjoint_planes",
                "factors",
                "criteria",
            ),
            ("training", *_LATER_EVALUATION_KEYS),
        )
        training = d.get("training")
        fidelity = d.get("fidelity")
        optional = {key: None if d.get(key) is None else float(d[key]) for key in _LATER_FLOAT_KEYS}
        return cls(
            env_id=str(d["env_id"]),
            env_kwargs=dict(d["env_kwargs"]),
            latent_dim=int(d["latent_dim"]),
            n_actions=int(d["n_actions"]),
            rollout_bce=RolloutError.from_dict(d["rollout_bce"]),
            rollout_bce_ratio=None if d["rollout_bce_ratio"] is None else float(d["rollout_bce_ratio"]),
            horizon=int(d["horizon"]),
            actions=tuple(ActionStructure.from_dict(a) for a in d["actions"]),
            factors=None if d["factors"] is None else tuple(FactorStructure.from_dict(f) for f in d["factors"]),
            disjoint_planes=d["disjoint_planes"],
            criteria=Criteria.from_dict(d["criteria"]),
            training=None if training is None else TrainingSummary.from_dict(training),
            fidelity=None if fidelity is None else Fidelity.from_dict(fidelity),
            **optional,
        )


#: Evaluation keys that reports written before them lack (read as None).
_LATER_FLOAT_KEYS = ("mean_image_bce", "frame_entropy", "mean_image_ratio", "dynamics_weight")
_LATER_EVALUATION_KEYS = (*_LATER_FLOAT_KEYS, "fidelity")


def format_summary(evaluation: Evaluation) -> str:
    """A few lines for the terminal: the rollout BCE, each action, the new figures, the criteria.

    The rollout BCE at 1 and the horizon; each action; then, those known: the mean-image BCE, the encoder
    probe, the decoder fidelity and the last dynamics weight; the criteria.
    """
    nan = float("nan")
    horizon = evaluation.horizon
    bce_1, bce_h = (evaluation.rollout_bce.mean_at(k) for k in (1, horizon))
    bce_1 = nan if bce_1 is None else bce_1
    bce_h = nan if bce_h is None else bce_h
    lines = [f"rollout BCE k=1: {bce_1:.4f}  k={horizon}: {bce_h:.4f}"]
    for a in evaluation.actions:
        if a.factor is not None:
            what = f"{a.factor}{'+' if a.direction is not None and a.direction > 0 else '-'}1"
            units = f"{a.angle_over_unit:+.4f} x 2pi/{a.cycle_length}"
        else:
            what, units = "", f"{a.angle:+.4f} rad"
        lines.append(f"action {a.action} {what:>16}: plane {a.dominant_plane} share {a.plane_share:.4f} angle {units}")
    if evaluation.mean_image_bce is not None and evaluation.frame_entropy is not None:
        share = "n/a" if evaluation.mean_image_ratio is None else f"{evaluation.mean_image_ratio:.3f}"
        lines.append(
            f"mean-image BCE k={horizon}: {evaluation.mean_image_bce:.4f}  frame entropy: "
            f"{evaluation.frame_entropy:.4f}  rollout excess / mean-image excess: {share}"
        )
    fid = evaluation.fidelity
    if fid is not None:
        probe = ", ".join(f"{name} {r2:.4f}" for name, r2 in zip(fid.factors, fid.probe_r2, strict=True))
        which = "every state" if fid.grid else "sampled states"
        lines.append(f"encoder probe R^2 ({fid.states} {which}): {probe}")
        imagined = "n/a" if fid.imagined_rate is None else f"{fid.imagined_rate:.2%}"
        last = "n/a" if fid.imagined_rate_last is None else f"{fid.imagined_rate_last:.2%}"
        lines.append(
            f"decoded nearest own state: reconstructions {fid.reconstruction_rate:.2%}, imagined k<="
            f"{fid.imagined_steps} {imagined} (k={fid.imagined_steps} {last})"
        )
    if evaluation.dynamics_weight is not None:
        lines.append(f"last dynamics_weight: {evaluation.dynamics_weight:.3f}")
    checks = {**evaluation.criteria.checks(), "all": evaluation.criteria.all}
    lines.append("criteria: " + ", ".join(f"{name}={value}" for name, value in checks.items()))
    return "\n".join(lines)


# -- memory --------------------------------------------------------------------------------------------


def evaluation_memory(image_shape: Sequence[int], latent_dim: int, episodes: int, horizon: int) -> int:
    """An estimate (bytes) of the peak memory of an evaluation of ``episodes`` episodes of ``horizon`` steps.

    The collected episodes (``episodes x (horizon + 1)`` uint8 frames with their actions and factors), twice
    (the chunks and their concatenation coexist); the rollout (each step's ``n x n`` rotation, the latents,
    two small tensors per step); the decoder's float32 logits, targets and BCE for one chunk of
    ``rollout_bce``'s frames; the BCE table. ``latent_dim`` 0 counts the episodes alone.
    """
    image = math.prod(int(s) for s in image_shape)
    frames = episodes * (horizon + 1)
    total = 2 * frames * (image + 8 + _FACTOR_BYTES)
    if latent_dim:
        total += frames * 4 * (latent_dim * latent_dim + 2 * latent_dim) + 2 * (horizon + 1) * _TENSOR_OVERHEAD
        decoded = min(max(1, _CHUNK_FRAMES // episodes), horizon + 1) * episodes
        total += 3 * 4 * decoded * image + frames * 12
    return total


def check_evaluation_memory(
    image_shape: Sequence[int], latent_dim: int, config: EvalConfig, episodes: int | None = None
) -> None:
    """Refuse, before any work, an evaluation whose :func:`evaluation_memory` exceeds :func:`available_memory`.

    Args:
        image_shape: (H, W, C) of the frames.
        latent_dim: The model's latent dimension (0: the episodes alone).
        config: The evaluation settings (``horizon``, and ``episodes`` unless given).
        episodes: Number of episodes (default ``config.episodes``).

    Raises:
        ValueError: Naming the estimate, the memory available and what to lower.
    """
    count = config.episodes if episodes is None else episodes
    needed = evaluation_memory(image_shape, latent_dim, count, config.horizon)
    available = available_memory()
    if available is None or needed <= available:
        return
    shape = "x".join(str(int(s)) for s in image_shape)
    raise ValueError(
        f"An evaluation of {count} episodes of horizon {config.horizon} needs about {_gib(needed)} of memory "
        f"({count} x {config.horizon + 1} frames of {shape} bytes, kept twice while collected, plus the "
        f"rollout and the decoder's float32 logits), but {_gib(available)} is available: lower the horizon "
        f"(--horizon) or the number of episodes (--episodes)."
    )


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"


# -- episodes --------------------------------------------------------------------------------------------


class EvalEpisodes(NamedTuple):
    """Evaluation episodes and what the environment says each action does."""

    batch: EpisodeBatch
    """The episodes."""
    action_effects: tuple[ActionEffect, ...] | None
    """``env.action_effects`` (None for environments without it)."""


def _action_effects(env: Any) -> tuple[ActionEffect, ...] | None:
    """The environment's published ``action_effects`` (single or vector env), or None if it has none."""
    effects = getattr(env, "action_effects", None)
    if effects is None:
        effects = getattr(getattr(env, "unwrapped", None), "action_effects", None)
    return None if effects is None else tuple(effects)


def collect_eval_episodes(
    env_id: str, env_kwargs: Mapping[str, Any], config: EvalConfig, episodes: int | None = None
) -> EvalEpisodes:
    """Evaluation episodes of ``config.horizon`` steps (in chunks, from ``config.seed``) and the action effects.

    Args:
        env_id: Environment id (through ``gym.make_vec``).
        env_kwargs: Its keyword arguments.
        config: Evaluation settings (horizon, seed and, unless ``episodes`` is given, the episode count).
        episodes: Number of episodes (default ``config.episodes``).

    Raises:
        ValueError: If the episodes would not fit in the memory available (:func:`check_evaluation_memory`).
    """
    total = config.episodes if episodes is None else episodes
    total = check_int("episodes", total, minimum=1)
    chunk = min(total, _EPISODES_PER_COLLECT)
    collector = RolloutCollector(env_id, chunk, config.horizon, config.seed, env_kwargs)
    try:
        check_evaluation_memory(collector.image_shape, 0, config, total)
        batches = [collector.collect(i) for i in range(math.ceil(total / chunk))]
        effects = _action_effects(collector.env)
    finally:
        collector.close()
    has_factors = all(b.factors is not None for b in batches)
    batch = EpisodeBatch(
        np.concatenate([b.observations for b in batches])[:total],
        np.concatenate([b.actions for b in batches])[:total],
        np.concatenate([b.factors for b in batches])[:total] if has_factors else None,
    )
    return EvalEpisodes(batch, effects)


# -- figures ---------------------------------------------------------------------------------------------


@torch.no_grad()
def rollout_bce(
    model: WorldModel, batch: EpisodeBatch, ks: Sequence[int] | None = None, chunk_frames: int = _CHUNK_FRAMES
) -> tuple[np.ndarray, np.ndarray]:
    """BCE of ``decode(R(a_k) ... R(a_1) enc(x_0))`` against ``x_k``, per episode and step.

    Args:
        model: The world model.
        batch: Episodes of ``T`` steps.
        ks: Steps to evaluate, integers in ``[0, T]`` (default every ``k = 0 .. T``).
        chunk_frames: Frames decoded per pass (bounds memory).

    Returns:
        ``(ks, bce)``: the steps (K,) and the BCE per episode and step, shape (E, K).
    """
    model.eval()
    frames = torch.from_numpy(batch.observations)
    last = frames.shape[1] - 1
    if ks is None:
        steps = np.arange(frames.shape[1])
    else:
        given = list(ks)
        if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in given) or not all(
            0 <= k <= last for k in given
        ):
            raise ValueError(f"`ks` must be integers in [0, {last}], got {given}.")
        steps = np.asarray(given, dtype=np.int64)
    latents = model.rollout(model.encode(frames[:, 0]), torch.from_numpy(batch.actions))[:, steps]  # (E, K, n)
    per_chunk = max(1, chunk_frames // frames.shape[0])
    bce = torch.empty(latents.shape[:2])
    for start in range(0, len(steps), per_chunk):
        part = slice(start, start + per_chunk)
        logits = model.decode_logits(latents[:, part])
        bce[:, part] = frame_bce(logits, frames_to_float(frames[:, steps[part]]))
    return steps, bce.numpy().astype(np.float64)


def _faithful_angle(angle: float, cycle: int, tolerance: float) -> tuple[float, int, float, bool]:
    """(angle / (2 pi / N), nearest k, relative error to 2 pi k / N, faithful?) for a wrapped angle."""
    unit = 2 * math.pi / cycle
    in_units = angle / unit
    k = round(in_units)
    error = abs(in_units - k) / abs(k) if k != 0 else math.inf
    faithful = k != 0 and math.gcd(abs(k), cycle) == 1 and error <= tolerance
    return in_units, k, error, faithful


class GroupStructure(NamedTuple):
    """The learnt group structure: per action, per factor, and the disjointness of the factors' planes."""

    actions: tuple[ActionStructure, ...]
    factors: tuple[FactorStructure, ...] | None
    disjoint_planes: bool | None


@torch.no_grad()
def structure(
    model: WorldModel,
    effects: Sequence[ActionEffect] | None,
    states: torch.Tensor,
    config: EvalConfig,
) -> GroupStructure:
    """Per-action group structure and the disjointness of the factors' planes.

    Args:
        model: The world model.
        effects: What each action does (``env.action_effects``); None leaves the factor figures out.
        states: Encoded states on which cycle closures are measured, shape (S, n).
        config: Thresholds of the criteria.
    """
    if effects is not None and len(effects) != model.n_actions:
        raise ValueError(
            f"`effects` must describe the model's {model.n_actions} actions, got {len(effects)} action effects."
        )
    angles = model.rotations.angles.detach()
    matrices = model.rotations.matrices()
    pairs = [(int(i), int(j)) for i, j in plane_pairs(model.latent_dim).tolist()]
    shares = dominant_share(angles)
    eye = torch.eye(model.latent_dim)
    actions = []
    for a in range(model.n_actions):
        plane = int(angles[a].abs().argmax())
        angle = math.remainder(float(angles[a, plane]), 2 * math.pi)
        figures: dict[str, Any] = {}
        if effects is not None:
            effect = effects[a]
            in_units, k, error, faithful = _faithful_angle(angle, effect.cycle_length, config.angle_tolerance)
            power = matrix_power(
                matrices[a].expand(len(states), -1, -1), torch.full((len(states),), effect.cycle_length)
            )
            closure = ((power @ states.unsqueeze(-1)).squeeze(-1) - states).norm(dim=-1)
            figures = {
                "factor": effect.factor,
                "direction": int(effect.direction),
                "cycle_length": int(effect.cycle_length),
                "angle_over_unit": in_units,
                "nearest_k": k,
                "angle_relative_error": error,
                "faithful": faithful,
                "cycle_closure_mean": float(closure.mean()),
                "cycle_closure_max": float(closure.max()),
                "inverse_error": float(torch.linalg.matrix_norm(matrices[a] @ matrices[effect.inverse] - eye)),
            }
        actions.append(
            ActionStructure(
                action=a,
                dominant_plane=pairs[plane],
                plane_share=float(shares[a]),
                angle=angle,
                angles=tuple(angles[a].tolist()),
                **figures,
            )
        )
    if effects is None:
        return GroupStructure(tuple(actions), None, None)
    names = list(dict.fromkeys(e.factor for e in effects))  # in order of their first action
    factors = []
    for name in names:
        moved = tuple(a.action for a in actions if a.factor == name)
        coordinates = tuple(sorted({c for a in moved for c in actions[a].dominant_plane}))
        factors.append(FactorStructure(name, int(effects[moved[0]].cycle_length), moved, coordinates))
    disjoint = all(not set(f.coordinates) & set(g.coordinates) for i, f in enumerate(factors) for g in factors[i + 1 :])
    return GroupStructure(tuple(actions), tuple(factors), disjoint)


def _rollout_error(ks: np.ndarray, bce: np.ndarray) -> RolloutError:
    mean = bce.mean(axis=0)
    half = 1.96 * bce.std(axis=0, ddof=1) / math.sqrt(bce.shape[0]) if bce.shape[0] > 1 else np.zeros_like(mean)
    return RolloutError(
        k=tuple(int(k) for k in ks),
        mean=tuple(mean.tolist()),
        ci95_low=tuple((mean - half).tolist()),
        ci95_high=tuple((mean + half).tolist()),
        episodes=int(bce.shape[0]),
    )


# -- fidelity, the mean image, the training ----------------------------------------------------------------


def _evaluation_contract(env: Any) -> Any | None:
    """The object holding ``factor_space`` and ``render_states`` (the env or its unwrapped core), or None."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        if hasattr(candidate, "factor_space") and callable(getattr(candidate, "render_states", None)):
            return candidate
    return None


@torch.no_grad()
def _decode_uint8(model: WorldModel, latents: torch.Tensor) -> np.ndarray:
    """Latents (M, n) -> uint8 images (M, H, W, C), ``round(255 * sigmoid(logits))``, in chunks."""
    out = np.empty((len(latents), *model.image_shape), dtype=np.uint8)
    for start in range(0, len(latents), _CHUNK_FRAMES):
        part = model.decode(latents[start : start + _CHUNK_FRAMES])
        out[start : start + _CHUNK_FRAMES] = (part * 255).round().to(torch.uint8).numpy()
    return out


@torch.no_grad()
def _encode(model: WorldModel, images: np.ndarray) -> torch.Tensor:
    """uint8 images (M, H, W, C) -> encodings (M, n), in chunks."""
    chunks = range(0, len(images), _CHUNK_FRAMES)
    parts = [model.encode(torch.from_numpy(images[s : s + _CHUNK_FRAMES])) for s in chunks]
    return torch.cat(parts) if parts else torch.empty(0, model.latent_dim)


def _squared_distances(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Exact squared L2 distances (float64 holds these integer sums exactly) of (Q, D) to (M, D) uint8 rows."""
    q = queries.astype(np.float64)
    c = candidates.astype(np.float64)
    return (q * q).sum(1)[:, None] - 2.0 * (q @ c.T) + (c * c).sum(1)[None, :]


def _nearest_own(contract: Any, grid: np.ndarray | None, decoded: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """Whether each decoded image (Q, H, W, C) is nearest (ties right) to its true state's image.

    With ``grid`` (the images of every state, in flat-index order) every state is a candidate; without it the
    candidates are the states that differ from the true state in one factor, rendered in chunks.
    """
    space = contract.factor_space
    sizes = np.asarray(space.sizes, dtype=np.int64)
    queries = decoded.reshape(len(decoded), -1)
    right = np.empty(len(decoded), dtype=bool)
    if grid is not None:
        flat_grid = grid.reshape(len(grid), -1)
        own = truths @ np.asarray(space.strides, dtype=np.int64)
        for start in range(0, len(queries), 256):
            d2 = _squared_distances(queries[start : start + 256], flat_grid)
            rows = np.arange(len(d2))
            right[start : start + 256] = d2[rows, own[start : start + 256]] <= d2.min(axis=1)
        return right
    variants = [(k, v) for k in range(len(sizes)) if sizes[k] > 1 for v in range(int(sizes[k]))]
    per_state = max(1, _CANDIDATE_BYTES // max(1, len(variants) * queries.shape[1]))
    for start in range(0, len(queries), per_state):
        truth = truths[start : start + per_state]
        candidates = np.repeat(truth[:, None, :], len(variants), axis=1)
        for m, (k, v) in enumerate(variants):
            candidates[:, m, k] = v
        images = contract.render_states(candidates).reshape(len(truth), len(variants), -1).astype(np.int64)
        own = contract.render_states(truth).reshape(len(truth), -1).astype(np.int64)
        q = queries[start : start + per_state].astype(np.int64)
        nearest = ((images - q[:, None, :]) ** 2).sum(-1).min(axis=1)
        right[start : start + per_state] = ((own - q) ** 2).sum(-1) <= nearest
    return right


@torch.no_grad()
def fidelity(model: WorldModel, env: Any, batch: EpisodeBatch, config: EvalConfig) -> Fidelity | None:
    """Encoder and decoder fidelity on the environment's states (see :class:`Fidelity`).

    Args:
        model: The world model.
        env: An environment with the evaluation contract: ``factor_space`` (``all_states``, ``sample_states``,
            ``sizes``, ``strides``, ``names``) and ``render_states`` (a single env's ``unwrapped`` core or a
            native vector env).
        batch: The evaluation episodes (their ``factors`` give the true states of the imagined frames).
        config: ``seed`` (of the sample of states, with more than :data:`GRID_STATES` states) and ``horizon``.

    Returns:
        The figures, or None if ``env`` has no evaluation contract.
    """
    contract = _evaluation_contract(env)
    if contract is None:
        return None
    model.eval()
    space = contract.factor_space
    sizes = np.asarray(space.sizes, dtype=np.int64)
    active = [k for k in range(len(sizes)) if sizes[k] > 1]
    grid = int(space.n_states) <= GRID_STATES
    rng = np.random.default_rng(config.seed)
    states = space.all_states() if grid else space.sample_states(SAMPLE_STATES, rng)
    images = contract.render_states(states)
    encodings = _encode(model, images)
    probe = circular_probe(encodings.numpy(), states[:, active], sizes[active].tolist())
    table = images if grid else None
    reconstructed = _right_rate(_nearest_own(contract, table, _decode_uint8(model, encodings), states))
    steps = min(IMAGINED_STEPS, int(batch.actions.shape[1]))
    imagined = imagined_last = None
    if batch.factors is not None:
        first = model.encode(torch.from_numpy(batch.observations[:, 0]))
        latents = model.rollout(first, torch.from_numpy(batch.actions[:, :steps]))[:, 1:]  # (E, K, n)
        decoded = _decode_uint8(model, latents.reshape(-1, model.latent_dim))
        truths = batch.factors[:, 1 : steps + 1].reshape(-1, batch.factors.shape[-1])
        right = _nearest_own(contract, table, decoded, truths).reshape(len(latents), steps)
        imagined, imagined_last = _right_rate(right), _right_rate(right[:, -1])
    return Fidelity(
        states=len(states),
        grid=grid,
        candidates="all_states" if grid else "one_factor_neighbours",
        factors=tuple(space.names[k] for k in active),
        probe_r2=tuple(float(r) for r in probe),
        reconstruction_rate=reconstructed,
        imagined_steps=steps,
        imagined_rate=imagined,
        imagined_rate_last=imagined_last,
    )


def _right_rate(right: np.ndarray) -> float:
    return float(np.mean(right))


def mean_image_bce(batch: EpisodeBatch, k: int) -> tuple[float, float]:
    """``(BCE of the mean frame, BCE of the frames against themselves)`` at step ``k``, averaged over episodes.

    The mean frame is the per-pixel mean of every frame of the batch; the second figure is the frames' own
    entropy, the floor of any prediction's BCE (anti-aliased pixels are neither 0 nor 1).
    """
    mean = torch.from_numpy(batch.observations.mean(axis=(0, 1), dtype=np.float64).astype(np.float32) / 255.0)
    frames = frames_to_float(torch.from_numpy(batch.observations[:, k]))
    against_mean = F.binary_cross_entropy(mean.expand_as(frames), frames)
    entropy = F.binary_cross_entropy(frames, frames)
    return float(against_mean), float(entropy)


def dynamics_trained(history: Sequence[Mapping[str, Any]] | None) -> tuple[bool | None, float | None]:
    """``(trained?, last logged dynamics_weight)`` from a training history.

    A run is trained when its last logged ``dynamics_weight`` reached 1: the warm-up and the dynamics ramp
    (``warmup.steps`` then ``optim.dynamics_ramp_steps``) are behind it. The trainer always logs the last
    step. None without a history (or rows without the weight); an empty history (no step taken) is False.
    """
    if history is None:
        return None, None
    if len(history) == 0:
        return False, None
    weight = history[-1].get("dynamics_weight")
    if weight is None:
        return None, None
    return float(weight) >= 1.0, float(weight)


def evaluate_model(
    model: WorldModel,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    config: EvalConfig,
    ks: Sequence[int] | None = None,
    episodes: EvalEpisodes | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> Evaluation:
    """Every figure of the report (see :class:`Evaluation`).

    Args:
        model: The trained world model.
        env_id: Environment id (evaluation episodes come from it through ``gym.make_vec``).
        env_kwargs: Its keyword arguments.
        config: Evaluation settings and criteria thresholds.
        ks: Rollout steps to evaluate (default all ``0 .. horizon``; the criteria need 1 and ``horizon``).
        episodes: Pre-collected evaluation episodes (:func:`collect_eval_episodes` with the same ``config``),
            to avoid collecting them again.
        history: The training history (one row per logged step, with ``dynamics_weight``), for
            ``dynamics_trained`` (None: that check cannot be judged, so ``all`` is False).

    Raises:
        ValueError: If the evaluation would not fit in the memory available (:func:`check_evaluation_memory`,
            checked before the episodes are collected).
    """
    if episodes is None:
        check_evaluation_memory(model.image_shape, model.latent_dim, config)
        episodes = collect_eval_episodes(env_id, env_kwargs, config)
    elif not isinstance(episodes, EvalEpisodes):
        raise TypeError(f"`episodes` must be EvalEpisodes (from collect_eval_episodes) or None, got {episodes!r}.")
    batch, effects = episodes
    if batch.actions.shape[1] != config.horizon:
        raise ValueError(
            f"`episodes` hold {batch.actions.shape[1]}-step episodes but `config.horizon` is {config.horizon}; "
            "collect them with the same EvalConfig."
        )
    rollout = _rollout_error(*rollout_bce(model, batch, ks))
    states = model.encode(torch.from_numpy(batch.observations[:, 0]))
    group = structure(model, effects, states, config)
    horizon = config.horizon
    bce_1, bce_h = rollout.mean_at(1), rollout.mean_at(horizon)
    ratio = bce_h / bce_1 if bce_1 is not None and bce_h is not None and bce_1 > 0 else None
    mean_bce, entropy = mean_image_bce(batch, horizon)
    excess = mean_bce - entropy
    mean_ratio = (bce_h - entropy) / excess if bce_h is not None and excess > 0 else None
    env = _contract_env(env_id, env_kwargs)
    try:
        fid = None if env is None else fidelity(model, env, batch, config)
    finally:
        if env is not None:
            env.close()
    trained, weight = dynamics_trained(history)
    thresholds = {
        "mean_image_margin": config.mean_image_margin,
        "probe_threshold": config.probe_threshold,
        "decoder_threshold": config.decoder_threshold,
    }
    decoder = None
    if fid is not None and fid.imagined_rate is not None:
        decoder = min(fid.reconstruction_rate, fid.imagined_rate) >= thresholds["decoder_threshold"]
    criteria = Criteria(
        single_plane=all(a.plane_share >= config.share_threshold for a in group.actions),
        faithful_angles=None if effects is None else all(a.faithful is True for a in group.actions),
        disjoint_planes=group.disjoint_planes,
        rollout_stable=None
        if ratio is None or mean_ratio is None
        else ratio <= config.bce_ratio_limit and mean_ratio <= thresholds["mean_image_margin"],
        encoder_fidelity=None if fid is None else all(r >= thresholds["probe_threshold"] for r in fid.probe_r2),
        decoder_fidelity=decoder,
        dynamics_trained=trained,
        share_threshold=config.share_threshold,
        angle_tolerance=config.angle_tolerance,
        bce_ratio_limit=config.bce_ratio_limit,
        **thresholds,
    )
    return Evaluation(
        env_id=env_id,
        env_kwargs=dict(env_kwargs),
        latent_dim=model.latent_dim,
        n_actions=model.n_actions,
        rollout_bce=rollout,
        rollout_bce_ratio=ratio,
        horizon=horizon,
        actions=group.actions,
        factors=group.factors,
        disjoint_planes=group.disjoint_planes,
        criteria=criteria,
        mean_image_bce=mean_bce,
        frame_entropy=entropy,
        mean_image_ratio=mean_ratio,
        fidelity=fid,
        dynamics_weight=weight,
    )


def _contract_env(env_id: str, env_kwargs: Mapping[str, Any]) -> Any | None:
    """``gym.make(env_id, **env_kwargs)`` when its core has the evaluation contract (to close after use), else None."""
    try:
        env = gym.make(env_id, **dict(env_kwargs))
    except gym.error.Error:
        return None
    if _evaluation_contract(env.unwrapped) is None:
        env.close()
        return None
    return env
