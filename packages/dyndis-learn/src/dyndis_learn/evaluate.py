"""Evaluation of a trained world model: long-rollout error and the learnt group structure.

Everything is measured on fresh evaluation episodes (random starts, random actions) from a seed kept
apart from training. The ground-truth factors of the environment are used here only: to name the factor
and direction of each action (actions ``2k`` / ``2k + 1`` move the ``k``-th active factor by +1 / -1) and
its cycle length ``N``, read from the vector env's public ``factor_space`` attribute.

Per action the figures are: the dominant plane and its share of ``sum(theta^2)``; the dominant angle in
units of ``2 pi / N``; whether it is a faithful ``N``-cycle angle ``2 pi k / N`` with ``gcd(k, N) = 1``
(within a relative tolerance); the cycle closure ``||R^N z - z||`` on encoded states; the inverse error
``||R(+) R(-) - I||_F``. Per run: whether different factors use disjoint sets of coordinates, and the
rollout BCE for every step ``k`` with a 95% interval over episodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dyndis_learn.config import EvalConfig
from dyndis_learn.losses import frame_bce
from dyndis_learn.model import WorldModel, frames_to_float
from dyndis_learn.regularizers import dominant_share
from dyndis_learn.rollouts import EpisodeBatch, RolloutCollector
from dyndis_learn.rotations import matrix_power, plane_pairs

__all__ = ["FactorInfo", "collect_eval_episodes", "evaluate_model", "factor_info", "rollout_bce", "structure"]

_EPISODES_PER_COLLECT = 8  # evaluation episodes collected at once (bounds memory for long horizons)


@dataclass(frozen=True)
class FactorInfo:
    """What the environment says about the factor an action moves (for the report only)."""

    name: str
    """The factor's name."""
    cycle_length: int
    """``N``: number of values the factor cycles through."""


def factor_info(collector: RolloutCollector) -> list[FactorInfo] | None:
    """The active factors in action order, from the vector env's public ``factor_space`` (None if absent)."""
    space = getattr(collector.env, "factor_space", None)
    if space is None:
        return None
    return [FactorInfo(str(space.names[k]), int(space.sizes[k])) for k in space.active]


def collect_eval_episodes(
    env_id: str, env_kwargs: dict[str, Any], config: EvalConfig, episodes: int | None = None
) -> tuple[EpisodeBatch, list[FactorInfo] | None]:
    """Evaluation episodes of ``config.horizon`` steps (in chunks, from ``config.seed``), and the factors."""
    total = config.episodes if episodes is None else episodes
    chunk = min(total, _EPISODES_PER_COLLECT)
    collector = RolloutCollector(env_id, chunk, config.horizon, config.seed, env_kwargs)
    try:
        batches = [collector.collect(i) for i in range(math.ceil(total / chunk))]
        factors = factor_info(collector)
    finally:
        collector.close()
    has_factors = all(b.factors is not None for b in batches)
    batch = EpisodeBatch(
        np.concatenate([b.observations for b in batches])[:total],
        np.concatenate([b.actions for b in batches])[:total],
        np.concatenate([b.factors for b in batches])[:total] if has_factors else None,
    )
    return batch, factors


@torch.no_grad()
def rollout_bce(
    model: WorldModel, batch: EpisodeBatch, ks: Sequence[int] | None = None, chunk_frames: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """BCE of ``decode(R(a_k) ... R(a_1) enc(x_0))`` against ``x_k``, per episode and step.

    Args:
        model: The world model.
        batch: Episodes of ``T`` steps.
        ks: Steps to evaluate (default every ``k = 0 .. T``).
        chunk_frames: Frames decoded per pass (bounds memory).

    Returns:
        ``(ks, bce)``: the steps (K,) and the BCE per episode and step, shape (E, K).
    """
    model.eval()
    frames = torch.from_numpy(batch.observations)
    steps = np.arange(frames.shape[1]) if ks is None else np.asarray(ks, dtype=np.int64)
    if steps.size and (steps.min() < 0 or steps.max() >= frames.shape[1]):
        raise ValueError(f"`ks` must lie in [0, {frames.shape[1] - 1}], got {list(steps)}.")
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


@torch.no_grad()
def structure(
    model: WorldModel,
    factors: list[FactorInfo] | None,
    states: torch.Tensor,
    config: EvalConfig,
) -> dict[str, Any]:
    """Per-action group structure and the disjointness of the factors' planes.

    Args:
        model: The world model.
        factors: Active factors in action order (None: factor-dependent figures are left out).
        states: Encoded states on which cycle closures are measured, shape (S, n).
        config: Thresholds of the criteria.

    Returns:
        ``{"actions": [...], "disjoint_planes": bool | None, "factors": [...]}`` (see the README).
    """
    angles = model.rotations.angles.detach()
    matrices = model.rotations.matrices()
    pairs = plane_pairs(model.latent_dim).tolist()
    shares = dominant_share(angles)
    eye = torch.eye(model.latent_dim)
    actions = []
    for a in range(model.n_actions):
        plane = int(angles[a].abs().argmax())
        angle = math.remainder(float(angles[a, plane]), 2 * math.pi)
        entry: dict[str, Any] = {
            "action": a,
            "dominant_plane": pairs[plane],
            "plane_share": float(shares[a]),
            "angle": angle,
            "angles": angles[a].tolist(),
        }
        if factors is not None and a // 2 < len(factors):
            info = factors[a // 2]
            in_units, k, error, faithful = _faithful_angle(angle, info.cycle_length, config.angle_tolerance)
            power = matrix_power(matrices[a].expand(len(states), -1, -1), torch.full((len(states),), info.cycle_length))
            closure = ((power @ states.unsqueeze(-1)).squeeze(-1) - states).norm(dim=-1)
            partner = a + 1 if a % 2 == 0 else a - 1
            inverse = float(torch.linalg.matrix_norm(matrices[a] @ matrices[partner] - eye))
            entry.update(
                {
                    "factor": info.name,
                    "direction": 1 if a % 2 == 0 else -1,
                    "cycle_length": info.cycle_length,
                    "angle_over_unit": in_units,
                    "nearest_k": k,
                    "angle_relative_error": error,
                    "faithful": faithful,
                    "cycle_closure_mean": float(closure.mean()),
                    "cycle_closure_max": float(closure.max()),
                    "inverse_error": inverse,
                }
            )
        actions.append(entry)
    result: dict[str, Any] = {"actions": actions, "disjoint_planes": None, "factors": None}
    if factors is not None:
        coordinates = [
            sorted({c for e in actions if e.get("factor") == f.name for c in e["dominant_plane"]}) for f in factors
        ]
        result["factors"] = [
            {"name": f.name, "cycle_length": f.cycle_length, "actions": [2 * i, 2 * i + 1], "coordinates": c}
            for i, (f, c) in enumerate(zip(factors, coordinates, strict=True))
        ]
        result["disjoint_planes"] = all(
            not set(coordinates[i]) & set(coordinates[j])
            for i in range(len(coordinates))
            for j in range(i + 1, len(coordinates))
        )
    return result


def _summary(ks: np.ndarray, bce: np.ndarray) -> dict[str, Any]:
    mean = bce.mean(axis=0)
    half = 1.96 * bce.std(axis=0, ddof=1) / math.sqrt(bce.shape[0]) if bce.shape[0] > 1 else np.zeros_like(mean)
    return {
        "k": ks.tolist(),
        "mean": mean.tolist(),
        "ci95_low": (mean - half).tolist(),
        "ci95_high": (mean + half).tolist(),
        "episodes": int(bce.shape[0]),
    }


def evaluate_model(
    model: WorldModel,
    env_id: str,
    env_kwargs: dict[str, Any],
    config: EvalConfig,
    ks: Sequence[int] | None = None,
    batch: EpisodeBatch | None = None,
    factors: list[FactorInfo] | None = None,
) -> dict[str, Any]:
    """Every figure of the report, as a JSON-serialisable dict (the keys are documented in the README).

    Args:
        model: The trained world model.
        env_id: Environment id (evaluation episodes come from it through ``gym.make_vec``).
        env_kwargs: Its keyword arguments.
        config: Evaluation settings and criteria thresholds.
        ks: Rollout steps to evaluate (default all ``0 .. horizon``; the criteria need 1 and ``horizon``).
        batch: Pre-collected evaluation episodes (with ``factors``), to avoid collecting them again.
        factors: The factors that come with ``batch``.
    """
    if batch is None:
        batch, factors = collect_eval_episodes(env_id, env_kwargs, config)
    ks_eval, bce = rollout_bce(model, batch, ks)
    rollout = _summary(ks_eval, bce)
    states = model.encode(torch.from_numpy(batch.observations[:, 0]))
    result = structure(model, factors, states, config)
    mean = dict(zip(rollout["k"], rollout["mean"], strict=True))
    horizon = config.horizon
    ratio = mean[horizon] / mean[1] if 1 in mean and horizon in mean and mean[1] > 0 else None
    criteria: dict[str, Any] = {
        "single_plane": all(a["plane_share"] >= config.share_threshold for a in result["actions"]),
        "faithful_angles": None if factors is None else all(a["faithful"] for a in result["actions"]),
        "disjoint_planes": result["disjoint_planes"],
        "rollout_stable": None if ratio is None else ratio <= config.bce_ratio_limit,
        "share_threshold": config.share_threshold,
        "angle_tolerance": config.angle_tolerance,
        "bce_ratio_limit": config.bce_ratio_limit,
    }
    checks = [criteria[k] for k in ("single_plane", "faithful_angles", "disjoint_planes", "rollout_stable")]
    criteria["all"] = all(c is True for c in checks)
    return {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "latent_dim": model.latent_dim,
        "n_actions": model.n_actions,
        "rollout_bce": rollout,
        "rollout_bce_ratio": ratio,
        "horizon": horizon,
        **result,
        "criteria": criteria,
    }
