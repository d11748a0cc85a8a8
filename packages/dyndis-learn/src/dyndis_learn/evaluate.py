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

import numpy as np
import torch

from dyndis_learn.config import EvalConfig
from dyndis_learn.limits import available_memory
from dyndis_learn.losses import frame_bce
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
    "GroupStructure",
    "RolloutError",
    "TrainingSummary",
    "check_evaluation_memory",
    "collect_eval_episodes",
    "evaluate_model",
    "evaluation_memory",
    "format_summary",
    "rollout_bce",
    "structure",
]

_EPISODES_PER_COLLECT = 8  # evaluation episodes collected at once (bounds memory for long horizons)
_CHUNK_FRAMES = 1024  # frames decoded per pass by rollout_bce
_FACTOR_BYTES = 64  # per frame for the factors' values (room for 8 int64 factors)
_TENSOR_OVERHEAD = 512  # bytes of a small tensor object (the rollout keeps two per step)


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
    """Rollout BCE at ``k = horizon`` at most ``bce_ratio_limit`` times that at ``k = 1`` (None if either
    step was not evaluated or the BCE at ``k = 1`` is 0)."""
    share_threshold: float
    """Threshold of ``single_plane``."""
    angle_tolerance: float
    """Relative tolerance of ``faithful_angles``."""
    bce_ratio_limit: float
    """Limit of ``rollout_stable``."""

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
        """Inverse of :meth:`to_dict`; a stored ``all`` must agree with the checks."""
        d = _fields(data, cls.__name__, [f.name for f in dataclasses.fields(cls)])
        criteria = cls(**d)
        if "all" in data and data["all"] != criteria.all:
            raise ValueError(f"Criteria.from_dict: stored all={data['all']!r} contradicts the checks {d}.")
        return criteria


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
            ("training",),
        )
        training = d.get("training")
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
        )


def format_summary(evaluation: Evaluation) -> str:
    """A few lines for the terminal: rollout BCE at 1 and the horizon, each action, the criteria."""
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


def evaluate_model(
    model: WorldModel,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    config: EvalConfig,
    ks: Sequence[int] | None = None,
    episodes: EvalEpisodes | None = None,
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
    criteria = Criteria(
        single_plane=all(a.plane_share >= config.share_threshold for a in group.actions),
        faithful_angles=None if effects is None else all(a.faithful is True for a in group.actions),
        disjoint_planes=group.disjoint_planes,
        rollout_stable=None if ratio is None else ratio <= config.bce_ratio_limit,
        share_threshold=config.share_threshold,
        angle_tolerance=config.angle_tolerance,
        bce_ratio_limit=config.bce_ratio_limit,
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
    )
