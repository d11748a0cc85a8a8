"""Metrics of a representation: functions of (encodings, factor values, cycle lengths).

Each metric takes the encodings of states, shape (S, n), the states' factor values as indices, shape
(S, K) int, and each factor's cycle length, shape (K,), and returns plain floats or arrays. The encodings
come from the environment's evaluation contract (``factor_space.all_states()`` or ``sample_states``,
``render_states``), never from training.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import mutual_info_score, r2_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

__all__ = [
    "DCI",
    "DLSBD",
    "MIG",
    "SAP",
    "CoordinateMetrics",
    "FactorVAEScore",
    "Metrics",
    "ModularityExplicitness",
    "circular_probe",
    "d_lsbd",
    "dci",
    "factor_planes",
    "factor_vae_score",
    "mig",
    "modularity_explicitness",
    "plane_angles",
    "sap",
    "summary",
]


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


# --------------------------------------------------------------------------------------------------------
# Results


def _plain(value: Any) -> Any:
    """JSON-ready: tuples and arrays become lists, NaN becomes None."""
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(x) for x in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class _Result:
    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (lists for tuples, ``None`` for NaN)."""
        return _plain(self)  # type: ignore[no-any-return]


def _floats(values: npt.ArrayLike) -> tuple[float, ...]:
    return tuple(float(x) for x in np.asarray(values, dtype=np.float64).ravel())


def _nanmean(values: npt.ArrayLike) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float(np.mean(a[~np.isnan(a)])) if np.any(~np.isnan(a)) else math.nan


@dataclass(frozen=True)
class DLSBD(_Result):
    """D_LSBD of a representation of a product of cyclic groups (:func:`d_lsbd`)."""

    value: float
    """Mean of :attr:`per_factor` over the factors with more than one value: 0 for a linear
    symmetry-based disentangled representation, about 1 for none."""
    total: float
    """Sum of :attr:`per_factor` (the reference code's total)."""
    per_factor: tuple[float, ...]
    """Per factor, the least dispersion over the candidate frequencies (NaN for a factor with one value)."""
    frequencies: tuple[int, ...]
    """Per factor, the frequency ``k`` that attains it (0 for a factor with one value)."""


@dataclass(frozen=True)
class MIG(_Result):
    """Mutual information gap (:func:`mig`)."""

    value: float
    """Mean of :attr:`per_factor` over the factors that vary."""
    per_factor: tuple[float, ...]
    """Per factor, (largest - second largest mutual information with one code) / the factor's entropy."""


@dataclass(frozen=True)
class DCI(_Result):
    """Disentanglement, completeness and informativeness (:func:`dci`)."""

    disentanglement: float
    """Per-code disentanglement weighted by each code's share of the total importance."""
    completeness: float
    """Mean of :attr:`per_factor_completeness` over the factors that vary."""
    informativeness_train: float
    """Mean training accuracy of the per-factor classifiers."""
    informativeness_test: float
    """Mean held-out accuracy of the per-factor classifiers."""
    per_code_disentanglement: tuple[float, ...]
    """Per code, 1 - the entropy (base K) of its importance over the factors."""
    per_factor_completeness: tuple[float, ...]
    """Per factor, 1 - the entropy (base n) of its importance over the codes."""
    per_factor_informativeness_test: tuple[float, ...]
    """Per factor, the held-out accuracy."""
    importance: tuple[tuple[float, ...], ...]
    """The importance matrix, one row per code, one column per factor."""


@dataclass(frozen=True)
class SAP(_Result):
    """Separated attribute predictability (:func:`sap`)."""

    value: float
    """Mean of :attr:`per_factor` over the factors that vary."""
    per_factor: tuple[float, ...]
    """Per factor, the gap between the two best single-code held-out accuracies."""


@dataclass(frozen=True)
class ModularityExplicitness(_Result):
    """Modularity and explicitness (:func:`modularity_explicitness`)."""

    modularity: float
    """Mean of :attr:`per_code_modularity`."""
    explicitness_train: float
    """Mean training ROC AUC of the per-factor logistic regressions."""
    explicitness_test: float
    """Mean held-out ROC AUC."""
    per_code_modularity: tuple[float, ...]
    """Per code, 1 - the mean squared mutual information with the other factors relative to the top one."""
    per_factor_explicitness_test: tuple[float, ...]
    """Per factor, the held-out ROC AUC (mean over its values, one against the rest)."""


@dataclass(frozen=True)
class FactorVAEScore(_Result):
    """FactorVAE score (:func:`factor_vae_score`)."""

    train_accuracy: float
    """Accuracy of the majority-vote classifier on the votes it was built from."""
    eval_accuracy: float
    """Its accuracy on fresh votes: the score."""
    active_dims: int
    """Codes with non-zero variance (the others cannot vote)."""


@dataclass(frozen=True)
class CoordinateMetrics(_Result):
    """The disentanglement_lib metrics on one set of coordinates (raw, or per-plane angles)."""

    mig: MIG
    dci: DCI
    sap: SAP
    modularity: ModularityExplicitness
    factor_vae: FactorVAEScore


@dataclass(frozen=True)
class Metrics(_Result):
    """Every metric of a representation (:func:`summary`)."""

    d_lsbd: DLSBD
    """D_LSBD (in the given planes, or in planes found per factor)."""
    probe_r2: tuple[float, ...]
    """Per factor, the held-out R^2 of :func:`circular_probe`."""
    raw: CoordinateMetrics
    """The metrics on the latent coordinates themselves."""
    angles: CoordinateMetrics
    """The metrics on :func:`plane_angles`: one angle per plane."""
    planes_given: bool
    """Whether the planes were given (else found by :func:`factor_planes`)."""


# --------------------------------------------------------------------------------------------------------
# Planes and angles


def _plane_bases(planes: npt.ArrayLike, n: int) -> np.ndarray:
    """Planes as orthonormal-ish bases, shape (P, n, 2): from coordinate pairs (P, 2) or bases (P, n, 2)."""
    p = np.asarray(planes)
    if p.ndim == 2 and p.shape[1] == 2 and np.issubdtype(p.dtype, np.integer):
        if np.any(p < 0) or np.any(p >= n) or np.any(p[:, 0] == p[:, 1]):
            raise ValueError(f"Coordinate planes must be pairs of distinct axes in [0, {n}), got {p.tolist()}.")
        bases = np.zeros((len(p), n, 2))
        bases[np.arange(len(p)), p[:, 0], 0] = 1.0
        bases[np.arange(len(p)), p[:, 1], 1] = 1.0
        return bases
    if p.ndim == 3 and p.shape[1:] == (n, 2):
        return p.astype(np.float64)
    raise ValueError(
        f"`planes` must be coordinate pairs, shape (P, 2) int, or bases, shape (P, {n}, 2), got shape {p.shape}."
    )


def plane_angles(encodings: npt.ArrayLike, planes: npt.ArrayLike, *, centre: bool = False) -> npt.NDArray[np.float64]:
    """One angle coordinate per plane: ``atan2`` of the encoding's two coordinates in the plane.

    A cyclic factor represented by a rotation in a plane puts its states on a circle there; its angle is one
    coordinate that carries the factor alone, where the raw coordinates spread it over two (``cos`` and
    ``sin``), each of which confuses two values of the factor (``v`` and ``-v``, or ``v`` and ``N/2 - v``).

    Args:
        encodings: Shape (S, n).
        planes: Coordinate pairs ``(i, j)``, shape (P, 2) int (the model's planes), or orthonormal bases,
            shape (P, n, 2) (e.g. :func:`factor_planes`).
        centre: Subtract the encodings' mean first. The model's rotations turn about the origin, so its
            planes need no centring; planes found in data (:func:`factor_planes`) turn about the mean.

    Returns:
        Angles in ``[-pi, pi]``, shape (S, P).
    """
    z = np.asarray(encodings, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"`encodings` must have shape (S, n), got {z.shape}.")
    if centre:
        z = z - z.mean(axis=0)
    coords = np.einsum("sn,pnc->spc", z, _plane_bases(planes, z.shape[1]))
    return np.arctan2(coords[..., 1], coords[..., 0])


def _other_factors_removed(z: np.ndarray, v: np.ndarray, n: np.ndarray, factor: int) -> np.ndarray:
    """The encodings less what the other factors' values explain, so that only ``factor``'s variation is left.

    Where every orbit of the factor is complete (each setting of the other factors appears with each of the
    factor's values exactly once: the full grid) this is the reference's centring: each state less the mean
    of its orbit. Otherwise (a sample of a large grid) the other factors' parts are taken as additive and
    estimated by group means: ``z - mean(z) - sum_{j != factor} (mean(z | v_j) - mean(z))``.
    """
    others = np.delete(v, factor, axis=1)
    _, orbit, counts = np.unique(others, axis=0, return_inverse=True, return_counts=True)
    orbit = orbit.ravel()
    complete = np.all(counts == n[factor]) and len(np.unique(np.stack([orbit, v[:, factor]], 1), axis=0)) == len(v)
    if complete:
        means = np.zeros((len(counts), z.shape[1]))
        np.add.at(means, orbit, z)
        return z - (means / counts[:, None])[orbit]
    mu = z.mean(axis=0)
    out = z - mu
    for j in range(v.shape[1]):
        if j == factor:
            continue
        sums = np.zeros((n[j], z.shape[1]))
        np.add.at(sums, v[:, j], z)
        cnt = np.bincount(v[:, j], minlength=n[j])[:, None]
        out -= (sums / np.maximum(cnt, 1) - mu)[v[:, j]]
    return out


def factor_planes(
    encodings: npt.ArrayLike, factors: npt.ArrayLike, cycle_lengths: Sequence[int]
) -> npt.NDArray[np.float64]:
    """Per factor, the 2-D subspace that carries most of its variation (D_LSBD's planes when none are given).

    The encodings less the other factors' parts (the orbit means on a full grid, additive group means on a
    sample) are the factor's variation; its two leading principal axes span the plane.

    Returns:
        Orthonormal bases, shape (K, n, 2): zero columns beyond the rank of the factor's variation (all zero
        for a factor with one value, or one the encodings ignore).
    """
    z, v, n = _check_inputs(encodings, factors, cycle_lengths)
    bases = np.zeros((len(n), z.shape[1], 2))
    tol = 1e-9 * max(float(np.linalg.norm(z - z.mean(axis=0))), 1e-300)
    for k in range(len(n)):
        if n[k] == 1:
            continue
        _, sv, vt = np.linalg.svd(_other_factors_removed(z, v, n, k), full_matrices=False)
        m = int(np.sum(sv[:2] > tol))
        bases[k, :, :m] = vt[:m].T
    return bases


# --------------------------------------------------------------------------------------------------------
# D_LSBD


def d_lsbd(
    encodings: npt.ArrayLike,
    factors: npt.ArrayLike,
    cycle_lengths: Sequence[int],
    *,
    planes: npt.ArrayLike | None = None,
    max_frequency: int = 10,
) -> DLSBD:
    """D_LSBD (Tonnaer et al., ICML 2022) for a product of cyclic groups, each represented by SO(2).

    Per factor ``i`` with ``N`` values: the encodings less the other factors' parts (see
    :func:`factor_planes`) are projected onto the factor's plane; there they are turned onto their principal
    axes and each axis is scaled to variance 1/2 (a circle of any radius and aspect becomes the unit circle).
    For each candidate frequency ``k`` in ``[-max_frequency, max_frequency]``, ``k != 0``, every point ``p``
    of value ``v`` is turned back by ``-2 pi k v / N``; the factor's value is the least, over ``k``, mean
    squared distance of these turned-back points to their mean. A linear symmetry-based disentangled
    representation turns every point back onto one point: 0. Points that carry nothing of the factor have
    mean squared norm 1 and stay spread: about 1. The sum over factors of the per-factor terms separates, so
    each factor's frequency is searched on its own (``2 max_frequency`` candidates per factor, not
    ``(2 max_frequency + 1)^K`` combinations).

    Args:
        encodings: Shape (S, n): the full grid of states, or a uniform sample of it.
        factors: Value indices, shape (S, K).
        cycle_lengths: ``N`` of each factor, shape (K,).
        planes: Each factor's plane: coordinate pairs, shape (K, 2) int (the model's planes), or bases,
            shape (K, n, 2). ``None``: found by :func:`factor_planes` (the reference's choice: the two
            leading principal axes of the factor's variation).
        max_frequency: Largest ``|k|`` tried.

    Returns:
        The mean over factors as the value, the sum, and each factor's value and frequency.
    """
    z, v, n = _check_inputs(encodings, factors, cycle_lengths)
    if max_frequency < 1:
        raise ValueError(f"`max_frequency` must be >= 1, got {max_frequency!r}.")
    if planes is None:
        bases = factor_planes(z, v, n)
    else:
        bases = _plane_bases(planes, z.shape[1])
        if len(bases) != len(n):
            raise ValueError(f"`planes` must give one plane per factor ({len(n)}), got {len(bases)}.")
    # 1, -1, 2, -2, ...: among equal dispersions (aliases k + N) the smallest |k| wins, the positive first
    ks = np.array([s * k for k in range(1, max_frequency + 1) for s in (1, -1)])
    per_factor = np.full(len(n), np.nan)
    freqs = np.zeros(len(n), dtype=np.int64)
    for i in range(len(n)):
        if n[i] == 1:
            continue
        y = _other_factors_removed(z, v, n, i) @ bases[i]
        y = y - y.mean(axis=0)
        eigval, eigvec = np.linalg.eigh(y.T @ y / len(y))
        if np.linalg.det(eigvec) < 0:  # a rotation of the plane, not a reflection: the sign of k is kept
            eigvec[:, 1] *= -1
        std = np.sqrt(np.maximum(eigval, 0.0))
        if std.max() <= 1e-12 * max(1.0, float(np.abs(z).max())):
            per_factor[i] = 1.0  # the encodings do not move with the factor: nothing to turn back
            continue
        # scale each principal axis to variance 1/2; an axis without variance (N = 2: a segment) stays at 0
        scale = np.where(std > 1e-6 * std.max(), 1.0 / (np.sqrt(2.0) * np.where(std > 0, std, 1.0)), 0.0)
        w = (y @ eigvec) * scale
        c = w[:, 0] + 1j * w[:, 1]
        phase = 2 * np.pi * v[:, i] / n[i]
        # mean |c e^{-ik phase} - m|^2 = mean |c|^2 - |m|^2, m = mean(c e^{-ik phase})
        m = np.exp(-1j * np.outer(ks, phase)) @ c / len(c)
        dispersion = np.mean(np.abs(c) ** 2) - np.abs(m) ** 2
        best = int(np.flatnonzero(dispersion <= dispersion.min() + 1e-9)[0])
        per_factor[i] = max(float(dispersion[best]), 0.0)
        freqs[i] = ks[best]
    varying = ~np.isnan(per_factor)
    return DLSBD(
        value=_nanmean(per_factor),
        total=float(per_factor[varying].sum()),
        per_factor=_floats(per_factor),
        frequencies=tuple(int(k) for k in freqs),
    )


# --------------------------------------------------------------------------------------------------------
# disentanglement_lib's metrics


def _draw(count: int, num: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(count, size=num)


def _train_test(count: int, num_train: int, num_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random train and test states when there are enough, else independent draws with replacement."""
    if num_train < 1 or num_test < 1:
        raise ValueError(f"`num_train` and `num_test` must be >= 1, got {num_train} and {num_test}.")
    rng = np.random.default_rng(seed)
    if count >= num_train + num_test:
        order = rng.permutation(count)
        return order[:num_train], order[num_train : num_train + num_test]
    return _draw(count, num_train, rng), _draw(count, num_test, rng)


def _train_only(count: int, num_train: int, seed: int) -> np.ndarray:
    if num_train < 1:
        raise ValueError(f"`num_train` must be >= 1, got {num_train}.")
    rng = np.random.default_rng(seed)
    return rng.permutation(count)[:num_train] if count >= num_train else _draw(count, num_train, rng)


def _discretise(z: np.ndarray, num_bins: int) -> np.ndarray:
    """disentanglement_lib's histogram discretisation: ``num_bins`` equal bins over each code's range."""
    out = np.empty(z.shape, dtype=np.int64)
    for i in range(z.shape[1]):
        edges = np.histogram(z[:, i], num_bins)[1]
        out[:, i] = np.digitize(z[:, i], edges[:-1])
    return out


def _mutual_information(codes: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mutual information (nats) of each discrete code with each factor, shape (n, K)."""
    return np.array(
        [[mutual_info_score(v[:, j], codes[:, i]) for j in range(v.shape[1])] for i in range(codes.shape[1])]
    )


def mig(
    encodings: npt.ArrayLike,
    factors: npt.ArrayLike,
    cycle_lengths: Sequence[int],
    *,
    num_train: int = 10_000,
    num_bins: int = 20,
    seed: int = 0,
) -> MIG:
    """Mutual information gap (Chen et al., NeurIPS 2018), as disentanglement_lib computes it.

    On ``num_train`` states, each code is discretised into ``num_bins`` equal-width bins; per factor the
    gap between the two largest mutual informations of a code with the factor, over the factor's entropy.

    Returns:
        The mean over the factors that vary (a factor constant in the sample has NaN), and each factor's gap.
    """
    z, v, _ = _check_inputs(encodings, factors, cycle_lengths)
    idx = _train_only(len(z), num_train, seed)
    codes, y = _discretise(z[idx], num_bins), v[idx]
    mi = _mutual_information(codes, y)
    entropy = np.array([mutual_info_score(y[:, j], y[:, j]) for j in range(y.shape[1])])
    top = -np.sort(-mi, axis=0)
    second = top[1] if len(top) > 1 else np.zeros(y.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(entropy > 0, (top[0] - second) / entropy, np.nan)
    return MIG(value=_nanmean(gap), per_factor=_floats(gap))


def _varying(y: np.ndarray) -> list[int]:
    return [j for j in range(y.shape[1]) if len(np.unique(y[:, j])) > 1]


def _entropy_base(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy of distributions along ``axis`` in ``base`` (0 log 0 = 0); ``base`` 1 gives 0."""
    if base < 2:
        return np.zeros(np.delete(p.shape, axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=axis) / np.log(base)


def dci(
    encodings: npt.ArrayLike,
    factors: npt.ArrayLike,
    cycle_lengths: Sequence[int],
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    importance: str = "gbt",
    seed: int = 0,
) -> DCI:
    """Disentanglement, completeness, informativeness (Eastwood & Williams, ICLR 2018), as disentanglement_lib.

    Per factor, a classifier predicts the factor's value from all codes; its feature importances form a
    column of the importance matrix ``R`` (n codes x K factors). Disentanglement: per code ``1 - H_K(R[i] /
    sum R[i])``, weighted by the code's share of ``sum R``; completeness: per factor ``1 - H_n(R[:, j] / sum
    R[:, j])``, averaged; informativeness: the classifiers' accuracies.

    Args:
        encodings: Shape (S, n).
        factors: Value indices, shape (S, K).
        cycle_lengths: ``N`` of each factor, shape (K,).
        num_train: Training states (drawn from the given ones).
        num_test: Held-out states.
        importance: ``"gbt"``: scikit-learn's ``GradientBoostingClassifier`` with its defaults and its
            impurity importances (disentanglement_lib's choice; minutes on 10,000 states with many values).
            ``"logistic"``: a multinomial ``LogisticRegression`` on standardised codes, importance
            ``sum over values |coefficient|`` (a linear, L2-regularised stand-in for the paper's Lasso; fast).
        seed: Seed of the draws and of the trees.

    Returns:
        The three scores, the per-code and per-factor values and the importance matrix. Factors constant in
        the training states get a zero column and NaN values.
    """
    z, v, _ = _check_inputs(encodings, factors, cycle_lengths)
    if importance not in ("gbt", "logistic"):
        raise ValueError(f"`importance` must be 'gbt' or 'logistic', got {importance!r}.")
    train, test = _train_test(len(z), num_train, num_test, seed)
    x_train, x_test, y_train, y_test = z[train], z[test], v[train], v[test]
    n_codes, n_factors = z.shape[1], v.shape[1]
    r = np.zeros((n_codes, n_factors))
    acc_train = np.full(n_factors, np.nan)
    acc_test = np.full(n_factors, np.nan)
    for j in _varying(y_train):
        if importance == "gbt":
            model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train[:, j])
            r[:, j] = np.abs(model.feature_importances_)
        else:
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            model.fit(x_train, y_train[:, j])
            r[:, j] = np.abs(model[-1].coef_).sum(axis=0)
        acc_train[j] = np.mean(model.predict(x_train) == y_train[:, j])
        acc_test[j] = np.mean(model.predict(x_test) == y_test[:, j])
    varying = _varying(y_train)
    sub = r[:, varying]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = 1.0 - _entropy_base(sub / sub.sum(axis=1, keepdims=True), len(varying), axis=1)
        per_code = np.where(sub.sum(axis=1) > 0, per_code, 0.0)
        weights = sub.sum(axis=1) / sub.sum() if sub.sum() > 0 else np.zeros(n_codes)
        completeness = np.full(n_factors, np.nan)
        completeness[varying] = 1.0 - _entropy_base(sub / sub.sum(axis=0, keepdims=True), n_codes, axis=0)
    return DCI(
        disentanglement=float(np.sum(per_code * weights)),
        completeness=_nanmean(completeness),
        informativeness_train=_nanmean(acc_train),
        informativeness_test=_nanmean(acc_test),
        per_code_disentanglement=_floats(per_code),
        per_factor_completeness=_floats(completeness),
        per_factor_informativeness_test=_floats(acc_test),
        importance=tuple(_floats(row) for row in r),
    )


def sap(
    encodings: npt.ArrayLike,
    factors: npt.ArrayLike,
    cycle_lengths: Sequence[int],
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    seed: int = 0,
) -> SAP:
    """Separated attribute predictability (Kumar et al., ICLR 2018), as disentanglement_lib (discrete factors).

    For each code and factor, a linear SVM (``LinearSVC(C=0.01, class_weight="balanced")``) predicts the
    factor from that code alone; per factor, the gap between the two best held-out accuracies.

    Returns:
        The mean over the factors that vary, and each factor's gap.
    """
    z, v, _ = _check_inputs(encodings, factors, cycle_lengths)
    train, test = _train_test(len(z), num_train, num_test, seed)
    scores = np.zeros((z.shape[1], v.shape[1]))
    varying = _varying(v[train])
    for i in range(z.shape[1]):
        for j in varying:
            clf = LinearSVC(C=0.01, class_weight="balanced").fit(z[train, i : i + 1], v[train, j])
            scores[i, j] = np.mean(clf.predict(z[test, i : i + 1]) == v[test, j])
    top = -np.sort(-scores, axis=0)
    gap = np.full(v.shape[1], np.nan)
    gap[varying] = (top[0] - (top[1] if len(top) > 1 else 0.0))[varying]
    return SAP(value=_nanmean(gap), per_factor=_floats(gap))


def _auc_one_vs_rest(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean over values of the ROC AUC of one value against the rest (values absent or alone skipped)."""
    aucs = [roc_auc_score(y == c, proba[:, col]) for col, c in enumerate(classes) if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(aucs)) if aucs else math.nan


def modularity_explicitness(
    encodings: npt.ArrayLike,
    factors: npt.ArrayLike,
    cycle_lengths: Sequence[int],
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    num_bins: int = 20,
    seed: int = 0,
) -> ModularityExplicitness:
    """Modularity and explicitness (Ridgeway & Mozer, NeurIPS 2018), as disentanglement_lib.

    Modularity: with ``m`` the mutual information of each (discretised, ``num_bins``) code with each factor,
    per code ``1 - sum_{j != top} m_j^2 / (m_top^2 (K - 1))`` (0 for a code that carries nothing), averaged.
    Explicitness: per factor, a logistic regression on the standardised codes; the ROC AUC of each value
    against the rest, averaged over values, then over factors.

    Returns:
        Modularity, explicitness on the training and held-out states, and their per-code / per-factor values.
    """
    z, v, _ = _check_inputs(encodings, factors, cycle_lengths)
    train, test = _train_test(len(z), num_train, num_test, seed)
    varying = _varying(v[train])
    mi = _mutual_information(_discretise(z[train], num_bins), v[train][:, varying])
    squared = mi**2
    top = squared.max(axis=1) if len(varying) else np.zeros(z.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - top) / (top * (len(varying) - 1))
    per_code = np.where(top > 0, 1.0 - delta, 0.0) if len(varying) > 1 else np.where(top > 0, 1.0, 0.0)
    scaler = StandardScaler().fit(z[train])
    x_train, x_test = scaler.transform(z[train]), scaler.transform(z[test])
    ex_train = np.full(v.shape[1], np.nan)
    ex_test = np.full(v.shape[1], np.nan)
    for j in varying:
        clf = LogisticRegression(max_iter=1000).fit(x_train, v[train, j])
        ex_train[j] = _auc_one_vs_rest(v[train, j], clf.predict_proba(x_train), clf.classes_)
        ex_test[j] = _auc_one_vs_rest(v[test, j], clf.predict_proba(x_test), clf.classes_)
    return ModularityExplicitness(
        modularity=float(np.mean(per_code)),
        explicitness_train=_nanmean(ex_train),
        explicitness_test=_nanmean(ex_test),
        per_code_modularity=_floats(per_code),
        per_factor_explicitness_test=_floats(ex_test),
    )


def _factor_vae_votes(
    z: np.ndarray,
    v: np.ndarray,
    global_var: np.ndarray,
    active: np.ndarray,
    varying: list[int],
    num_votes: int,
    batch_size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Votes, shape (active codes, K).

    Per vote: a factor, a batch of states sharing its value drawn from the states, and the code of least
    variance over the batch relative to its variance over all states.
    """
    votes = np.zeros((int(active.sum()), v.shape[1]), dtype=np.int64)
    chosen = np.asarray(varying)[rng.integers(len(varying), size=num_votes)]
    for j in varying:
        count = int(np.sum(chosen == j))
        if count == 0:
            continue
        order = np.argsort(v[:, j], kind="stable")
        starts = np.searchsorted(v[order, j], np.arange(v[:, j].max() + 2))
        value = v[rng.integers(len(v), size=count), j]  # the value of a random state: the factor's marginal
        size = starts[value + 1] - starts[value]
        picks = order[starts[value][:, None] + (rng.random((count, batch_size)) * size[:, None]).astype(np.int64)]
        for lo in range(0, count, 1024):
            batch = z[picks[lo : lo + 1024]][:, :, active]
            local = batch.var(axis=1, ddof=1) / global_var[active]
            np.add.at(votes[:, j], np.argmin(local, axis=1), 1)
    return votes


def factor_vae_score(
    encodings: npt.ArrayLike,
    factors: npt.ArrayLike,
    cycle_lengths: Sequence[int],
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    seed: int = 0,
) -> FactorVAEScore:
    """FactorVAE score (Kim & Mnih, ICML 2018), as disentanglement_lib, with batches drawn from the states.

    Each code is scaled by its standard deviation over ``num_variance_estimate`` states. A vote: a factor
    (uniform over the factors that vary), a value of it (that of a random state), ``batch_size`` states with
    that value (drawn with replacement from the given states that have it; on the full grid the other factors
    are then uniform, as disentanglement_lib samples them), and the code of least scaled variance over the
    batch. The majority-vote classifier maps each code to the factor it most often wins for; the score is its
    accuracy on ``num_eval`` fresh votes. Codes without variance are left out (disentanglement_lib keeps
    them and divides by zero).

    Returns:
        Training and evaluation accuracy, and the number of codes that can vote.
    """
    z, v, _ = _check_inputs(encodings, factors, cycle_lengths)
    if batch_size < 2:
        raise ValueError(f"`batch_size` must be >= 2, got {batch_size}.")
    rng = np.random.default_rng(seed)
    global_var = z[_draw(len(z), num_variance_estimate, rng)].var(axis=0, ddof=1)
    active = global_var > 0
    varying = _varying(v)
    if not active.any() or not varying:
        return FactorVAEScore(train_accuracy=0.0, eval_accuracy=0.0, active_dims=int(active.sum()))
    train = _factor_vae_votes(z, v, global_var, active, varying, num_train, batch_size, rng)
    classifier = np.argmax(train, axis=1)
    rows = np.arange(len(train))
    evaluation = _factor_vae_votes(z, v, global_var, active, varying, num_eval, batch_size, rng)
    return FactorVAEScore(
        train_accuracy=float(train[rows, classifier].sum() / train.sum()),
        eval_accuracy=float(evaluation[rows, classifier].sum() / evaluation.sum()),
        active_dims=int(active.sum()),
    )


# --------------------------------------------------------------------------------------------------------
# All of them


def _coordinate_metrics(
    x: np.ndarray, v: np.ndarray, n: np.ndarray, num_train: int, num_test: int, importance: str, seed: int
) -> CoordinateMetrics:
    return CoordinateMetrics(
        mig=mig(x, v, n, num_train=num_train, seed=seed),
        dci=dci(x, v, n, num_train=num_train, num_test=num_test, importance=importance, seed=seed),
        sap=sap(x, v, n, num_train=num_train, num_test=num_test, seed=seed),
        modularity=modularity_explicitness(x, v, n, num_train=num_train, num_test=num_test, seed=seed),
        factor_vae=factor_vae_score(x, v, n, num_train=num_train, num_eval=num_test, seed=seed),
    )


def summary(
    encodings: npt.ArrayLike,
    factors: npt.ArrayLike,
    cycle_lengths: Sequence[int],
    *,
    planes: npt.ArrayLike | None = None,
    num_train: int = 10_000,
    num_test: int = 5_000,
    dci_importance: str = "gbt",
    max_frequency: int = 10,
    seed: int = 0,
) -> Metrics:
    """Every metric: D_LSBD, the circular probe, and the disentanglement_lib metrics on raw and angle coordinates.

    Args:
        encodings: Shape (S, n): the full grid of states where it fits, else a uniform sample.
        factors: Value indices, shape (S, K).
        cycle_lengths: ``N`` of each factor, shape (K,).
        planes: The factors' planes (one per factor: coordinate pairs, shape (K, 2) int, or bases, shape
            (K, n, 2)), used by D_LSBD and for the angle coordinates. ``None``: :func:`factor_planes` (those
            of the factors with more than one value), and the angles are taken about the encodings' mean.
        num_train: States (or votes) the metrics fit on. The probe holds out half of the states instead.
        num_test: States the metrics are scored on (the FactorVAE score's evaluation votes).
        dci_importance: :func:`dci`'s ``importance``.
        max_frequency: :func:`d_lsbd`'s.
        seed: Seed of every draw.
    """
    z, v, n = _check_inputs(encodings, factors, cycle_lengths)
    given = planes is not None
    bases = _plane_bases(planes, z.shape[1]) if given else factor_planes(z, v, n)
    angle_planes = bases if given else bases[n > 1]  # a factor with one value has no plane to read
    return Metrics(
        d_lsbd=d_lsbd(z, v, n, planes=bases, max_frequency=max_frequency),
        probe_r2=_floats(circular_probe(z, v, n, seed=seed)),
        raw=_coordinate_metrics(z, v, n, num_train, num_test, dci_importance, seed),
        angles=_coordinate_metrics(
            plane_angles(z, angle_planes, centre=not given), v, n, num_train, num_test, dci_importance, seed
        ),
        planes_given=given,
    )
