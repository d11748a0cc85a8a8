"""Metrics of a representation: functions of (encodings, factor values, cycle lengths).

Each metric takes the encodings of states, shape (S, n), the states' factor values as indices, shape
(S, K) int, and each factor's cycle length, shape (K,), and returns plain floats or arrays. The encodings
come from the environment's evaluation contract (``factor_space.all_states()`` or ``sample_states``,
``render_states``), never from training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

__all__ = ["circular_probe"]


def _check_inputs(
    encodings: npt.ArrayLike, factors: npt.ArrayLike, cycle_lengths: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.asarray(encodings, dtype=np.float64)
    v = np.asarray(factors)
    n = np.asarray(cycle_lengths, dtype=np.int64)
    if z.ndim != 2 or v.ndim != 2 or len(z) != len(v):
        raise ValueError(
            f"`encodings` (S, n) and `factors` (S, K) must be 2-D with one row per state, got shapes "
            f"{z.shape} and {v.shape}."
        )
    if not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"`factors` must hold integer value indices, got dtype {v.dtype}.")
    if n.shape != (v.shape[1],) or np.any(n < 1) or np.any(v < 0) or np.any(v >= n):
        raise ValueError(
            f"`cycle_lengths` must give each of the {v.shape[1]} factors a length > every index of it, got "
            f"{n.tolist()} for indices up to {v.max(axis=0).tolist() if v.size else []}."
        )
    return z, v.astype(np.int64), n


def circular_probe(
    encodings: npt.ArrayLike,
    factors: npt.ArrayLike,
    cycle_lengths: Sequence[int],
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    """Per factor, the held-out R^2 of a linear map from the encodings to ``(cos 2 pi v / N, sin 2 pi v / N)``.

    A cyclic factor lives on a circle, so the probe's target is the factor's first Fourier mode, not its
    index. The states are split at random (``seed``) into a training part, on which an ordinary least
    squares map (with intercept) is fitted, and a held-out part (``test_fraction``), on which R^2 of the two
    target coordinates is averaged (uniform weights). A factor with one value (``N = 1``) has nothing to
    predict: its R^2 is NaN.

    Args:
        encodings: Shape (S, n).
        factors: Value indices, shape (S, K).
        cycle_lengths: ``N`` of each factor, shape (K,).
        test_fraction: Share of the states held out, in (0, 1).
        seed: Seed of the split.

    Returns:
        R^2 per factor, shape (K,): 1 for a perfect linear read-out, about 0 (or below) for none.
    """
    z, v, n = _check_inputs(encodings, factors, cycle_lengths)
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must lie in (0, 1), got {test_fraction!r}.")
    order = np.random.default_rng(seed).permutation(len(z))
    held = round(test_fraction * len(z))
    if held < 2 or len(z) - held < 2:
        raise ValueError(f"Too few states ({len(z)}) to fit on some and hold out the others.")
    test, train = order[:held], order[held:]
    scores = np.full(len(n), np.nan)
    for k, cycle in enumerate(n):
        if cycle == 1:
            continue
        phase = 2 * np.pi * v[:, k] / cycle
        target = np.stack([np.cos(phase), np.sin(phase)], axis=1)
        probe = LinearRegression().fit(z[train], target[train])
        scores[k] = r2_score(target[test], probe.predict(z[test]), multioutput="uniform_average")
    return scores
