"""Typed results of an evaluation: frozen dataclasses whose ``to_dict()`` gives the ``report.json`` keys.

:class:`Evaluation` holds everything (:class:`RolloutError`, :class:`ActionStructure` per action,
:class:`FactorStructure` per factor, :class:`Fidelity`, :class:`Criteria`, :class:`TrainingSummary`);
:meth:`Evaluation.from_dict` reads a ``report.json`` back, :func:`format_summary` prints it for a terminal,
and :data:`CRITERIA` names the criteria once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dyndis_learn.config import EvalConfig

__all__ = [
    "CRITERIA",
    "STRUCTURE_CRITERIA",
    "ActionStructure",
    "Criteria",
    "Evaluation",
    "FactorStructure",
    "Fidelity",
    "RolloutError",
    "StateSetFidelity",
    "TrainingSummary",
    "format_summary",
]

#: Default thresholds of the criteria that judge the trained model (``EvalConfig``'s; reports written before
#: they existed are read with these).
PROBE_THRESHOLD = EvalConfig.probe_threshold
DECODER_THRESHOLD = EvalConfig.decoder_threshold
MEAN_IMAGE_MARGIN = EvalConfig.mean_image_margin


# -- typed results ---------------------------------------------------------------------------------------


def _optional_list(values: Sequence[float] | None) -> list[float] | None:
    return None if values is None else list(values)


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
class StateSetFidelity:
    """The encoder probe and the reconstructions on one set of states: those training saw, or those it did not."""

    states: int
    """Number of states probed: every state of the set up to :data:`~dyndis_learn.fidelity.PROBE_STATES`, else
    a uniform seeded sample of that many (up to :data:`~dyndis_learn.fidelity.SAMPLE_STATES` in reports written
    before 2026-12-02, session 23)."""
    probe_r2: tuple[float, ...]
    """Per active factor, the held-out R^2 of the circular probe on these states alone (fitted on half of them)."""
    reconstruction_rate: float | None
    """Share of these states whose decoded reconstruction is nearest to its own image (None without
    reconstructions)."""
    encoder_probe_r2: tuple[float, ...] | None = None
    """With decoder-checked encodings (:attr:`Fidelity.synthesis_modes` above 1), ``probe_r2`` of the encoder's
    own encodings of the same states; else None."""
    reconstructed_states: int | None = None
    """Number of those states whose reconstruction was judged: up to
    :data:`~dyndis_learn.fidelity.SAMPLE_STATES`, a seeded uniform sample of them (None in reports written
    before 2026-12-02, session 23: every state probed)."""

    @property
    def pictures_judged(self) -> str:
        """``" of N"`` where the reconstructions were judged on fewer states (N) than the probe, else ``""``."""
        judged = self.reconstructed_states
        return "" if judged is None or judged == self.states else f" of {judged}"

    def to_dict(self) -> dict[str, Any]:
        """The ``fidelity.seen`` / ``fidelity.unseen`` entry of ``report.json``."""
        return {
            "states": self.states,
            "probe_r2": list(self.probe_r2),
            "reconstruction_rate": self.reconstruction_rate,
            "encoder_probe_r2": _optional_list(self.encoder_probe_r2),
            "reconstructed_states": self.reconstructed_states,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateSetFidelity:
        """Inverse of :meth:`to_dict`."""
        d = _fields(
            data,
            cls.__name__,
            ["states", "probe_r2", "reconstruction_rate"],
            ["encoder_probe_r2", "reconstructed_states"],
        )
        return cls(
            int(d["states"]),
            tuple(float(v) for v in d["probe_r2"]),
            d["reconstruction_rate"],
            _optional_floats(d.get("encoder_probe_r2")),
            None if d.get("reconstructed_states") is None else int(d["reconstructed_states"]),
        )


def _optional_floats(data: Any) -> tuple[float, ...] | None:
    return None if data is None else tuple(float(v) for v in data)


def _optional_set(data: Any) -> StateSetFidelity | None:
    return None if data is None else StateSetFidelity.from_dict(data)


@dataclass(frozen=True)
class Fidelity:
    """How faithfully the model encodes and draws the environment's states.

    The states come from the environment's evaluation contract (``factor_space``, ``render_states``). The probes
    judge the encodings of every state when there are at most :data:`~dyndis_learn.fidelity.PROBE_STATES`, else
    of that many drawn uniformly with ``EvalConfig.seed``; the pictures, those of every state when there are at
    most :data:`~dyndis_learn.fidelity.GRID_STATES`, else of :data:`~dyndis_learn.fidelity.SAMPLE_STATES` states
    drawn uniformly with ``EvalConfig.seed``. A decoded image is *right* when no candidate image is nearer to it
    (squared L2 on uint8 pixels; ties count as right) than its own state's image. The candidates are the images
    of every state (``candidates="all_states"``, with the full grid) or, with a sample, those of every state that
    differs from the true state in one factor (``"one_factor_neighbours"``: each factor through all its values).
    """

    states: int
    """Number of states reconstructed."""
    grid: bool
    """Whether they are every state (True) or a uniform seeded sample (False)."""
    candidates: str
    """``"all_states"`` or ``"one_factor_neighbours"``."""
    factors: tuple[str, ...]
    """The active factors (more than one value), in factor order."""
    probe_r2: tuple[float, ...]
    """Per active factor, the held-out R^2 of :func:`~dyndis_learn.metrics.circular_probe` on the encodings of the
    ``probe_states`` (:func:`~dyndis_learn.fidelity.probe_states`)."""
    reconstruction_rate: float | None
    """Share of the states whose decoded reconstruction is nearest to its own image (None for a model that does
    not reconstruct, the direct predictor: its decoder only draws the next frame)."""
    imagined_steps: int
    """``K = min(100, horizon)``: the imagined rollouts' length; the last frame judged is ``k = K``."""
    imagined_rate: float | None
    """Share of the judged imagined frames nearest to their true state's image: the frames
    :func:`~dyndis_learn.fidelity.judged_imagined_steps` (``k = 10, 20, .., 100``) of ``imagined_rollouts``
    rollouts from uniformly drawn states (:func:`~dyndis_learn.fidelity.imagined_rollouts`). None where not
    judged (reports written without the episodes' ``info["factors"]``)."""
    imagined_rate_last: float | None
    """The same share at ``k = K`` alone."""
    reconstruction_confusion: tuple[float, ...] | None = None
    """Per active factor, the share of the states whose decoded reconstruction is nearer to a candidate with
    another value of that factor than to its own image: which factor the decoder draws wrong (a wrong
    reconstruction counts once for each factor its nearest candidate changes). None without reconstructions
    (and in reports written before it existed)."""
    seen_fraction: float | None = None
    """Share of all the environment's states that training saw (None where the run does not know which states
    it saw: only the cycles warm-up keeps them, and reports written before)."""
    seen: StateSetFidelity | None = None
    """The probe and the reconstructions on states training saw (None where unknown, or fewer than
    :data:`~dyndis_learn.fidelity.MIN_SET_STATES` of them)."""
    unseen: StateSetFidelity | None = None
    """The same on states training never saw: whether the encoder generalises (None as for ``seen``)."""
    synthesis_modes: int = 1
    """Which encodings were judged (``EvalConfig.synthesis_modes``): 1 the encoder's own; more, the
    decoder-checked encodings over that many modes per circle (1 in reports written before it existed)."""
    encoder_probe_r2: tuple[float, ...] | None = None
    """With decoder-checked encodings, ``probe_r2`` of the encoder's own encodings of the same states; else None."""
    imagined_rollouts: int | None = None
    """Number of imagined rollouts judged (:data:`~dyndis_learn.fidelity.IMAGINED_ROLLOUTS`); None in reports
    written before 2026-12-02, which judged every frame ``k = 1 .. K`` of the evaluation episodes instead."""
    probe_states: int | None = None
    """Number of states whose encodings ``probe_r2`` judges: every state up to
    :data:`~dyndis_learn.fidelity.PROBE_STATES`, else a uniform seeded sample of that many. None in reports
    written before 2026-12-02 (session 23), whose probe judged the ``states`` reconstructed."""

    @property
    def probed(self) -> int:
        """Number of states the probe judged (``states`` in reports written before ``probe_states`` existed)."""
        return self.states if self.probe_states is None else self.probe_states

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
            "reconstruction_confusion": _optional_list(self.reconstruction_confusion),
            "seen_fraction": self.seen_fraction,
            "seen": None if self.seen is None else self.seen.to_dict(),
            "unseen": None if self.unseen is None else self.unseen.to_dict(),
            "synthesis_modes": self.synthesis_modes,
            "encoder_probe_r2": _optional_list(self.encoder_probe_r2),
            "imagined_rollouts": self.imagined_rollouts,
            "probe_states": self.probe_states,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fidelity:
        """Inverse of :meth:`to_dict`."""
        optional = [
            "reconstruction_confusion",
            "seen_fraction",
            "seen",
            "unseen",
            "synthesis_modes",
            "encoder_probe_r2",
            "imagined_rollouts",
            "probe_states",
        ]
        keys = [f.name for f in dataclasses.fields(cls) if f.name not in optional]
        d = _fields(data, cls.__name__, keys, optional)
        return cls(
            **{
                **d,
                "factors": tuple(str(name) for name in d["factors"]),
                "probe_r2": tuple(float(v) for v in d["probe_r2"]),
                "reconstruction_confusion": _optional_floats(d.get("reconstruction_confusion")),
                "seen": _optional_set(d.get("seen")),
                "unseen": _optional_set(d.get("unseen")),
                "synthesis_modes": int(d.get("synthesis_modes", 1)),
                "encoder_probe_r2": _optional_floats(d.get("encoder_probe_r2")),
                "imagined_rollouts": None if d.get("imagined_rollouts") is None else int(d["imagined_rollouts"]),
                "probe_states": None if d.get("probe_states") is None else int(d["probe_states"]),
            }
        )


def _criterion() -> Any:
    return dataclasses.field(metadata={"criterion": True})


@dataclass(frozen=True)
class Criteria:
    """The quality criteria: each check is True, False, or None when it cannot be judged.

    :attr:`all` holds only when every check is True (a check that cannot be judged does not pass).
    """

    single_plane: bool | None = _criterion()
    """Every action holds at least ``share_threshold`` of ``sum(theta^2)`` in one plane (None for a model without
    rotations)."""
    faithful_angles: bool | None = _criterion()
    """Every action's dominant angle is a faithful ``N``-cycle angle (None without action effects or rotations)."""
    disjoint_planes: bool | None = _criterion()
    """Different factors rotate disjoint sets of coordinates (None without action effects or rotations)."""
    rollout_stable: bool | None = _criterion()
    """Rollout BCE at ``k = horizon`` at most ``bce_ratio_limit`` times that at ``k = 1``, and its excess over
    the frames' own entropy at most ``mean_image_margin`` times that of the mean image (None if either step was
    not evaluated, the BCE at ``k = 1`` is 0 or the mean image is as good as the frames themselves)."""
    encoder_fidelity: bool | None = _criterion()
    """The circular probe's held-out R^2 is at least ``probe_threshold`` for every active factor, on the sampled
    states and, where the run knows which states it saw, on seen and on unseen states separately (None without
    the environment's evaluation contract)."""
    decoder_fidelity: bool | None = _criterion()
    """Decoded reconstructions of the fidelity states and frames of imagined 100-step rollouts from uniformly drawn
    states (:attr:`Fidelity.imagined_rate`) are nearest, in pixels, to their own state's image in at least
    ``decoder_threshold`` of cases (None without the evaluation contract; the imagined frames alone for a model
    that does not reconstruct)."""
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
    not_applicable: tuple[str, ...] = ()
    """The checks that do not apply to the model, each None: :data:`STRUCTURE_CRITERIA` for a model without
    rotations (a baseline of :mod:`dyndis_learn.baselines`), none for the rotation model. Such a check does not
    pass, so ``all`` is False for a model without rotations."""

    def __post_init__(self) -> None:
        unknown = [name for name in self.not_applicable if name not in CRITERIA]
        if unknown:
            raise ValueError(f"Criteria.not_applicable: unknown check(s) {unknown}; the checks are {list(CRITERIA)}.")
        judged = [name for name in self.not_applicable if getattr(self, name) is not None]
        if judged:
            raise ValueError(f"Criteria: the checks {judged} are named not applicable but hold a value.")

    @property
    def all(self) -> bool:
        """Whether every check holds."""
        return all(value is True for value in self.checks().values())

    def checks(self) -> dict[str, bool | None]:
        """``{name: value}`` of every check, in :data:`CRITERIA` order."""
        return {name: getattr(self, name) for name in CRITERIA}

    def to_dict(self) -> dict[str, Any]:
        """The ``criteria`` entry of ``report.json``: the checks, the thresholds, ``not_applicable``, then ``all``."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**data, "not_applicable": list(self.not_applicable), "all": self.all}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Criteria:
        """Inverse of :meth:`to_dict`; a stored ``all`` must agree with the checks.

        A report written before ``encoder_fidelity``, ``decoder_fidelity`` and ``dynamics_trained`` existed
        reads with those checks None (so ``all`` is False) and its stored ``all`` is not checked.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        d = _fields(data, cls.__name__, [n for n in names if n not in _LATER_KEYS], _LATER_KEYS)
        d["not_applicable"] = tuple(str(name) for name in d.get("not_applicable", ()))
        criteria = cls(**{**{name: None for name in _LATER_CRITERIA}, **d})
        legacy = any(name not in data for name in _LATER_CRITERIA)
        if not legacy and "all" in data and data["all"] != criteria.all:
            raise ValueError(f"Criteria.from_dict: stored all={data['all']!r} contradicts the checks {d}.")
        return criteria


#: Criteria (and their thresholds) that reports written before them lack.
_LATER_CRITERIA = ("encoder_fidelity", "decoder_fidelity", "dynamics_trained")
_LATER_KEYS = (*_LATER_CRITERIA, "mean_image_margin", "probe_threshold", "decoder_threshold", "not_applicable")


#: The names of the quality checks, in report order (the fields of :class:`Criteria` marked as criteria).
CRITERIA: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Criteria) if f.metadata.get("criterion"))

#: The checks that judge the learnt rotations: not applicable to a model without them.
STRUCTURE_CRITERIA: tuple[str, ...] = ("single_plane", "faithful_angles", "disjoint_planes")


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
    """Per action, in action order (empty for a model without rotations)."""
    factors: tuple[FactorStructure, ...] | None
    """Per factor, in order of their first action (None without action effects or rotations)."""
    disjoint_planes: bool | None
    """Whether different factors rotate disjoint coordinates (None without action effects or rotations)."""
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
        checked = f", decoder-checked over {fid.synthesis_modes} modes" if fid.synthesis_modes > 1 else ""
        lines.append(f"encoder probe R^2 ({fid.probed} states{checked}): {probe}")
        imagined = "n/a" if fid.imagined_rate is None else f"{fid.imagined_rate:.2%}"
        last = "n/a" if fid.imagined_rate_last is None else f"{fid.imagined_rate_last:.2%}"
        rebuilt = "n/a" if fid.reconstruction_rate is None else f"{fid.reconstruction_rate:.2%}"
        rollouts = "" if fid.imagined_rollouts is None else f"{fid.imagined_rollouts} rollouts, "
        lines.append(
            f"decoded nearest own state: reconstructions {rebuilt} ({fid.states} {which}), imagined k<="
            f"{fid.imagined_steps} {imagined} ({rollouts}k={fid.imagined_steps} {last})"
        )
        if fid.reconstruction_confusion is not None and any(fid.reconstruction_confusion):
            wrong = ", ".join(
                f"{name} {share:.2%}" for name, share in zip(fid.factors, fid.reconstruction_confusion, strict=True)
            )
            lines.append(f"reconstructions nearer another value of: {wrong}")
        if fid.seen_fraction == 1:
            lines.append("training saw every state")
        elif fid.seen_fraction is not None:
            parts = []
            for name, part in (("seen", fid.seen), ("unseen", fid.unseen)):
                if part is None:
                    parts.append(f"{name}: too few")
                    continue
                rate = "n/a" if part.reconstruction_rate is None else f"{part.reconstruction_rate:.2%}"
                parts.append(
                    f"{name} ({part.states}): probe R^2 min {min(part.probe_r2):.4f}, "
                    f"reconstructions {rate}{part.pictures_judged}"
                )
            lines.append(f"training saw {fid.seen_fraction:.2%} of the states; " + "; ".join(parts))
    if evaluation.dynamics_weight is not None:
        lines.append(f"last dynamics_weight: {evaluation.dynamics_weight:.3f}")
    criteria = evaluation.criteria
    checks: dict[str, Any] = {**criteria.checks(), "all": criteria.all}
    checks.update({name: "n/a" for name in criteria.not_applicable})
    lines.append("criteria: " + ", ".join(f"{name}={value}" for name, value in checks.items()))
    return "\n".join(lines)
