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

The results are the frozen dataclasses of :mod:`dyndis_learn.results`; the fidelity of encoder and decoder
to the true states is measured by :mod:`dyndis_learn.fidelity`. Models without rotations (the baselines of
:mod:`dyndis_learn.baselines`) get the figures that need none (see :func:`evaluate_model`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from dyndis_learn.baselines.base import LatentPredictiveModel, PredictiveModel, action_effects
from dyndis_learn.config import EvalConfig
from dyndis_learn.devices import module_device
from dyndis_learn.fidelity import dynamics_trained, evaluation_contract, fidelity, mean_image_bce
from dyndis_learn.limits import available_memory
from dyndis_learn.losses import frame_bce
from dyndis_learn.model import WorldModel, encode_checked, frames_to_float, synthesis_modes_for
from dyndis_learn.regularizers import dominant_share
from dyndis_learn.results import (
    STRUCTURE_CRITERIA,
    ActionStructure,
    Criteria,
    Evaluation,
    FactorStructure,
    Fidelity,
    RolloutError,
)
from dyndis_learn.rollouts import EpisodeBatch, RolloutCollector
from dyndis_learn.rotations import matrix_power, plane_pairs
from dyndis_learn.validation import check_int

if TYPE_CHECKING:
    from dyndis_envs import ActionEffect

__all__ = [
    "EvalEpisodes",
    "GroupStructure",
    "check_evaluation_memory",
    "collect_eval_episodes",
    "evaluate_model",
    "evaluation_memory",
    "rollout_bce",
    "structure",
]

_EPISODES_PER_COLLECT = 8  # evaluation episodes collected at once (bounds memory for long horizons)
_CHUNK_FRAMES = 1024  # frames decoded per pass by rollout_bce
_FACTOR_BYTES = 64  # per frame for the factors' values (room for 8 int64 factors)
_TENSOR_OVERHEAD = 512  # bytes of a small tensor object (the rollout keeps two per step)


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
        effects = action_effects(collector.env)
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
    model: WorldModel | PredictiveModel,
    batch: EpisodeBatch,
    ks: Sequence[int] | None = None,
    chunk_frames: int = _CHUNK_FRAMES,
    synthesis_modes: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """BCE of the model's imagined frame ``k`` against ``x_k``, per episode and step.

    For the rotation model the frame is ``decode(R(a_k) ... R(a_1) enc(x_0))``; for a
    :class:`~dyndis_learn.baselines.base.PredictiveModel` it is its own ``k``-step prediction from ``x_0``
    (:meth:`~dyndis_learn.baselines.base.PredictiveModel.imagine_logits`).

    Args:
        model: The world model.
        batch: Episodes of ``T`` steps.
        ks: Steps to evaluate, integers in ``[first, T]`` (default every ``k = first .. T``); ``first`` is 0,
            or 1 for a model that does not reconstruct its input frame (``model.first_step``).
        chunk_frames: Frames decoded per pass (bounds memory; the rotation model's rollout).
        synthesis_modes: The rotation model's encodings of ``x_0``: 1 its encoder's own, more its decoder-checked
            ones (:func:`~dyndis_learn.model.encode_checked`).

    Returns:
        ``(ks, bce)``: the steps (K,) and the BCE per episode and step, shape (E, K).
    """
    model.eval()
    device = module_device(model)
    frames = torch.from_numpy(batch.observations)  # on the CPU; each chunk goes to the model's device
    last = frames.shape[1] - 1
    first = model.first_step if isinstance(model, PredictiveModel) else 0
    if ks is None:
        steps = np.arange(first, frames.shape[1])
    else:
        given = list(ks)
        if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in given) or not all(
            first <= k <= last for k in given
        ):
            raise ValueError(f"`ks` must be integers in [{first}, {last}], got {given}.")
        steps = np.asarray(given, dtype=np.int64)
    if isinstance(model, PredictiveModel):
        return steps, _imagined_bce(model, frames, torch.from_numpy(batch.actions), steps)
    start = encode_checked(model, frames[:, 0].to(device), synthesis_modes)
    latents = model.rollout(start, torch.from_numpy(batch.actions).to(device))[:, steps]  # (E, K, n)
    per_chunk = max(1, chunk_frames // frames.shape[0])
    bce = torch.empty(latents.shape[:2])
    for start in range(0, len(steps), per_chunk):
        part = slice(start, start + per_chunk)
        logits = model.decode_logits(latents[:, part])
        bce[:, part] = frame_bce(logits, frames_to_float(frames[:, steps[part]].to(device))).cpu()
    return steps, bce.numpy().astype(np.float64)


def _imagined_bce(model: PredictiveModel, frames: torch.Tensor, actions: torch.Tensor, steps: np.ndarray) -> np.ndarray:
    """BCE per episode at ``steps`` of a predictive model's imagined frames (E, K)."""
    device = module_device(model)
    columns: dict[int, list[int]] = {}
    for i, k in enumerate(steps.tolist()):
        columns.setdefault(int(k), []).append(i)
    bce = np.empty((frames.shape[0], len(steps)), dtype=np.float64)
    if not columns:
        return bce
    last = max(columns)
    first, moves = frames[:, 0].to(device), actions[:, :last].to(device)

    def fill(k: int, logits: torch.Tensor) -> None:
        values = frame_bce(logits.float(), frames_to_float(frames[:, k].to(device))).cpu().numpy()
        bce[:, columns[k]] = values.astype(np.float64)[:, None]

    if isinstance(model, LatentPredictiveModel):  # roll the latents out, decode only the steps asked for
        latents = model.rollout(model.encode(first), moves)
        for k in columns:
            fill(k, model.decode_logits(latents[:, k]))
        return bce
    for k, logits in enumerate(model.imagine_logits(first, moves), start=model.first_step):
        if k in columns:
            fill(k, logits)
        if k >= last:
            break
    return bce


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
    eye = torch.eye(model.latent_dim, device=angles.device)
    actions = []
    for a in range(model.n_actions):
        plane = int(angles[a].abs().argmax())
        angle = math.remainder(float(angles[a, plane]), 2 * math.pi)
        figures: dict[str, Any] = {}
        if effects is not None:
            effect = effects[a]
            in_units, k, error, faithful = _faithful_angle(angle, effect.cycle_length, config.angle_tolerance)
            cycles = torch.full((len(states),), effect.cycle_length, device=states.device)
            power = matrix_power(matrices[a].expand(len(states), -1, -1), cycles)
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
    model: WorldModel | PredictiveModel,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    config: EvalConfig,
    ks: Sequence[int] | None = None,
    episodes: EvalEpisodes | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    seen_states: np.ndarray | None = None,
) -> Evaluation:
    """Every figure of the report (see :class:`Evaluation`).

    A model without rotations (a :class:`~dyndis_learn.baselines.base.PredictiveModel`: the baselines) gets
    every figure that needs no rotation: the rollout BCE of its own ``k``-step predictions, the mean image,
    fidelity, the dynamics check. It has no per-action or per-factor structure (``actions`` is empty,
    ``factors`` and ``disjoint_planes`` None), and the structure criteria (:data:`STRUCTURE_CRITERIA`) are
    None and named in ``criteria.not_applicable``, so ``criteria.all`` is False for it.

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
        seen_states: The states training saw (value indices, shape (S, F); see
            :meth:`~dyndis_learn.trainer.Trainer.seen_states`): fidelity is then also judged on seen and on
            unseen states separately, and ``encoder_fidelity`` needs both.

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
    modes = synthesis_modes_for(model, config.synthesis_modes, "evaluation.synthesis_modes")
    rollout = _rollout_error(*rollout_bce(model, batch, ks, synthesis_modes=modes))
    rotations = not isinstance(model, PredictiveModel)
    if rotations:
        first = torch.from_numpy(batch.observations[:, 0]).to(module_device(model))
        states = encode_checked(model, first, modes)
        group = structure(model, effects, states, config)
    else:
        group = GroupStructure((), None, None)  # no rotations: the structure criteria do not apply
    horizon = config.horizon
    bce_1, bce_h = rollout.mean_at(1), rollout.mean_at(horizon)
    ratio = bce_h / bce_1 if bce_1 is not None and bce_h is not None and bce_1 > 0 else None
    mean_bce, entropy = mean_image_bce(batch, horizon)
    excess = mean_bce - entropy
    mean_ratio = (bce_h - entropy) / excess if bce_h is not None and excess > 0 else None
    env = _contract_env(env_id, env_kwargs)
    try:
        fid = None if env is None else fidelity(model, env, config, seen_states)
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
        rates = [r for r in (fid.reconstruction_rate, fid.imagined_rate) if r is not None]  # no reconstruction: direct
        decoder = min(rates) >= thresholds["decoder_threshold"]
    criteria = Criteria(
        single_plane=all(a.plane_share >= config.share_threshold for a in group.actions) if rotations else None,
        faithful_angles=None if effects is None or not rotations else all(a.faithful is True for a in group.actions),
        disjoint_planes=group.disjoint_planes,
        rollout_stable=None
        if ratio is None or mean_ratio is None
        else ratio <= config.bce_ratio_limit and mean_ratio <= thresholds["mean_image_margin"],
        encoder_fidelity=None if fid is None else _encoder_faithful(fid, thresholds["probe_threshold"]),
        decoder_fidelity=decoder,
        dynamics_trained=trained,
        share_threshold=config.share_threshold,
        angle_tolerance=config.angle_tolerance,
        bce_ratio_limit=config.bce_ratio_limit,
        **thresholds,
        not_applicable=() if rotations else STRUCTURE_CRITERIA,
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


def _encoder_faithful(fid: Fidelity, threshold: float) -> bool:
    """Every probe R^2 at least ``threshold``: on the sampled states, and on seen and unseen ones where judged."""
    sets = [fid.probe_r2, *(part.probe_r2 for part in (fid.seen, fid.unseen) if part is not None)]
    return all(r >= threshold for probe in sets for r in probe)


def _contract_env(env_id: str, env_kwargs: Mapping[str, Any]) -> Any | None:
    """``gym.make(env_id, **env_kwargs)`` when its core has the evaluation contract (to close after use), else None."""
    try:
        env = gym.make(env_id, **dict(env_kwargs))
    except gym.error.Error:
        return None
    if evaluation_contract(env.unwrapped) is None:
        env.close()
        return None
    return env
