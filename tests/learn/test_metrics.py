import json
import re

import numpy as np
import pytest

from dyndis_learn.metrics import (
    circular_probe,
    d_lsbd,
    dci,
    factor_vae_score,
    mig,
    modularity_explicitness,
    plane_angles,
    sap,
    summary,
)


def _torus(sizes=(5, 7)) -> tuple[np.ndarray, np.ndarray]:
    grids = np.indices(sizes).reshape(len(sizes), -1).T
    phases = 2 * np.pi * grids / np.asarray(sizes)
    return np.concatenate([np.cos(phases), np.sin(phases)], axis=1), grids


def test__circular_probe_on_a_perfect_torus_a_rotation_of_it_and_noise():
    encodings, factors = _torus()
    np.testing.assert_allclose(circular_probe(encodings, factors, (5, 7)), 1.0, atol=1e-12)
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    np.testing.assert_allclose(circular_probe(encodings @ rotation, factors, (5, 7)), 1.0, atol=1e-12)
    noise = np.random.default_rng(1).normal(size=encodings.shape)
    assert np.all(circular_probe(noise, factors, (5, 7)) < 0.2)
    # the index itself, not its circle, is not what the probe asks for
    assert np.all(circular_probe(factors.astype(float), factors, (5, 7)) < 0.9)


def test__circular_probe_is_seeded_and_skips_constant_factors():
    encodings, factors = _torus()
    factors = np.concatenate([factors, np.zeros((len(factors), 1), dtype=int)], axis=1)
    noisy = encodings + np.random.default_rng(2).normal(scale=0.3, size=encodings.shape)
    a = circular_probe(noisy, factors, (5, 7, 1), seed=3)
    np.testing.assert_array_equal(a, circular_probe(noisy, factors, (5, 7, 1), seed=3))
    assert np.isnan(a[2]) and np.all((a[:2] > 0.3) & (a[:2] < 1))


def test__circular_probe_bad_inputs():
    encodings, factors = _torus()
    with pytest.raises(ValueError, match=re.escape("`cycle_lengths` must give each of the 2 factors")):
        circular_probe(encodings, factors, (5, 6))
    with pytest.raises(ValueError, match=re.escape("must be 2-D with one row per state")):
        circular_probe(encodings[:3], factors, (5, 7))
    with pytest.raises(ValueError, match=re.escape("`test_fraction` must lie in (0, 1), got 1.0.")):
        circular_probe(encodings, factors, (5, 7), test_fraction=1.0)


# --------------------------------------------------------------------------------------------------------
# D_LSBD, plane angles and the disentanglement_lib metrics


def _grid(sizes) -> np.ndarray:
    return np.indices(sizes).reshape(len(sizes), -1).T


def _embedding(factors: np.ndarray, sizes, frequencies=None) -> np.ndarray:
    """Each factor on a unit circle in its own coordinate plane (0, 1), (2, 3), ...: a perfect LSBD model."""
    frequencies = np.ones(len(sizes)) if frequencies is None else np.asarray(frequencies)
    phases = 2 * np.pi * frequencies * factors / np.asarray(sizes)
    return np.stack([f(phases[:, k]) for k in range(len(sizes)) for f in (np.cos, np.sin)], axis=1)


_SMALL = {"num_train": 400, "num_test": 200}
_PLANES = np.array([[0, 1], [2, 3]])


def test__plane_angles_of_coordinate_pairs_and_bases():
    z = np.array([[1.0, 0.0, 0.0, -2.0], [0.0, 3.0, -1.0, 0.0]])
    # by hand: atan2(y, x) of (1, 0), (0, 3), (0, -2), (-1, 0)
    np.testing.assert_allclose(plane_angles(z, [[0, 1], [2, 3]]), [[0, -np.pi / 2], [np.pi / 2, np.pi]])
    bases = np.zeros((1, 4, 2))
    bases[0, 1, 0] = bases[0, 0, 1] = 1.0  # the plane (1, 0): x is coordinate 1, y coordinate 0
    np.testing.assert_allclose(plane_angles(z, bases), [[np.pi / 2], [0.0]])
    with pytest.raises(ValueError, match="pairs of distinct axes"):
        plane_angles(z, [[0, 0]])


def test__perfect_torus_scores_perfectly_on_angles():
    sizes = (5, 7)
    factors = _grid(sizes)
    z = _embedding(factors, sizes)
    for planes in (None, _PLANES):
        result = d_lsbd(z, factors, sizes, planes=planes)
        np.testing.assert_allclose(result.per_factor, 0.0, atol=1e-12)
        assert result.frequencies in ((1, 1), (-1, -1), (1, -1), (-1, 1))
    # a faithful frequency other than 1 is found, with its sign
    double = d_lsbd(_embedding(factors, sizes, (2, 3)), factors, sizes, planes=_PLANES)
    assert double.frequencies == (2, 3) and double.value < 1e-12
    np.testing.assert_allclose(circular_probe(z, factors, sizes), 1.0, atol=1e-12)
    # the full grid once (num_train = S): the mutual informations are exact, so MIG on angles is 1
    angles = plane_angles(z, _PLANES)
    np.testing.assert_allclose(mig(angles, factors, sizes, num_train=len(z)).per_factor, 1.0, atol=1e-12)
    scores = dci(angles, factors, sizes, **_SMALL)
    assert scores.disentanglement > 0.99 and scores.completeness > 0.99 and scores.informativeness_test == 1.0
    assert factor_vae_score(angles, factors, sizes, batch_size=16, num_train=300, num_eval=300).eval_accuracy == 1
    assert modularity_explicitness(angles, factors, sizes, **_SMALL).modularity > 0.99


def test__perfect_torus_on_raw_coordinates_splits_each_factor_over_two_codes():
    sizes = (5, 7)
    factors = _grid(sizes)
    z = _embedding(factors, sizes)
    raw, angles = mig(z, factors, sizes, num_train=len(z)), mig(plane_angles(z, _PLANES), factors, sizes, num_train=35)
    # sin of 2 pi v / N tells the values of an odd N apart, cos only {v, N - v}: the gap is H(v) - I(cos; v)
    for k, n in enumerate(sizes):
        cos_classes = np.bincount(np.minimum(np.arange(n), n - np.arange(n))) / n
        h_cos = -np.sum(cos_classes * np.log(cos_classes))
        np.testing.assert_allclose(raw.per_factor[k], (np.log(n) - h_cos) / np.log(n), atol=1e-12)
    assert raw.value < 0.4 < 0.99 < angles.value
    assert dci(z, factors, sizes, **_SMALL).completeness < 0.6


def test__random_embedding_scores_badly():
    sizes = (12, 10)
    factors = _grid(sizes)
    noise = np.random.default_rng(0).normal(size=(len(factors), 4))
    assert d_lsbd(noise, factors, sizes).value > 0.8
    assert d_lsbd(noise, factors, sizes, planes=_PLANES).value > 0.8
    assert np.all(circular_probe(noise, factors, sizes) < 0.1)
    assert mig(noise, factors, sizes, num_train=len(noise)).value < 0.1
    assert dci(noise, factors, sizes, importance="logistic", **_SMALL).informativeness_test < 0.3
    assert modularity_explicitness(noise, factors, sizes, **_SMALL).explicitness_test < 0.65


def test__permuting_coordinates_with_their_planes_changes_nothing():
    sizes = (3, 4)
    factors = _grid(sizes)
    z = _embedding(factors, sizes) + 0.2 * np.random.default_rng(3).normal(size=(12, 4))
    z = np.concatenate([z, np.random.default_rng(4).normal(size=(12, 1))], axis=1)
    perm = np.array([3, 4, 1, 0, 2])  # new coordinate c holds old coordinate perm[c]
    where = np.argsort(perm)  # old coordinate i is now at where[i]
    planes, moved = _PLANES, where[_PLANES]
    kwargs = {"num_train": 60, "num_test": 30, "dci_importance": "logistic"}
    a = summary(z, factors, sizes, planes=planes, **kwargs)
    b = summary(z[:, perm], factors, sizes, planes=moved, **kwargs)
    assert a.angles.to_dict() == b.angles.to_dict()
    np.testing.assert_allclose(a.d_lsbd.per_factor, b.d_lsbd.per_factor, atol=1e-12)
    # MIG does not depend on the order of the codes either
    np.testing.assert_allclose(a.raw.mig.per_factor, b.raw.mig.per_factor, atol=1e-12)


def _fixture() -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """2 factors of 3 and 4 values, a hand-built imperfect 4-D encoding (circles squashed, bent, mixed)."""
    sizes = (3, 4)
    factors = _grid(sizes)
    a, b = 2 * np.pi * factors[:, 0] / 3, 2 * np.pi * factors[:, 1] / 4
    z = np.stack(
        [
            np.cos(a) + 0.3 * np.cos(b),
            0.5 * np.sin(a) * (1 + 0.3 * factors[:, 1]) + 0.1 * factors[:, 1],
            np.cos(b) + 0.2 * np.sin(2 * a) + 0.05 * factors[:, 0] * factors[:, 1],
            np.sin(b) + 0.4 * np.cos(b) ** 2 - 0.15 * factors[:, 0],
        ],
        axis=1,
    )
    return z, factors, sizes


def test__d_lsbd_of_the_fixture_matches_a_brute_force():
    z, factors, sizes = _fixture()
    # brute force, the reference's steps literally: the grid as an array (3, 4, n); less the mean over the
    # factor's own axis; the plane's two coordinates; principal axes of their covariance, each scaled to
    # variance 1/2; for every k, each point turned by the rotation matrix of -2 pi k v / N; the mean squared
    # distance to the mean; the least over k.
    grid = z.reshape(3, 4, 4)
    expected, expected_k = [], []
    for i, (n, plane) in enumerate(zip(sizes, _PLANES, strict=True)):
        centred = (grid - grid.mean(axis=i, keepdims=True)).reshape(12, 4)[:, plane]
        cov = np.cov(centred.T, bias=True)
        eigval, eigvec = np.linalg.eigh(cov)
        if np.linalg.det(eigvec) < 0:  # principal axes as a rotation (keeps the plane's orientation)
            eigvec[:, 1] *= -1
        w = centred @ eigvec / np.sqrt(2 * eigval)
        best = (np.inf, 0)
        for k in [1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8, 9, -9, 10, -10]:
            turned = []
            for p, v in zip(w, factors[:, i], strict=True):
                t = -2 * np.pi * k * v / n
                turned.append(np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ p)
            turned = np.array(turned)
            d = np.mean(np.sum((turned - turned.mean(axis=0)) ** 2, axis=1))
            if d < best[0] - 1e-9:
                best = (d, k)
        expected.append(best[0])
        expected_k.append(best[1])
    result = d_lsbd(z, factors, sizes, planes=_PLANES)
    np.testing.assert_allclose(result.per_factor, expected, atol=1e-12)
    assert result.frequencies == tuple(expected_k)
    np.testing.assert_allclose(result.value, np.mean(expected), atol=1e-12)
    np.testing.assert_allclose(result.total, np.sum(expected), atol=1e-12)
    assert 0.01 < result.value < 0.5


def test__d_lsbd_on_a_uniform_sample_of_a_larger_grid():
    sizes = (12, 10, 8)
    factors = _grid(sizes)
    z = np.concatenate([_embedding(factors, sizes), np.zeros((len(factors), 1))], axis=1)
    sample = np.random.default_rng(5).choice(len(z), size=400, replace=False)
    # incomplete orbits: the other factors' parts are removed by group means; the model is perfect, so the
    # sample's residual spread is only that of the group means' estimates
    result = d_lsbd(z[sample], factors[sample], sizes)
    assert result.value < 0.05 and all(abs(k) == 1 for k in result.frequencies)
    noise = np.random.default_rng(6).normal(size=z.shape)
    assert d_lsbd(noise[sample], factors[sample], sizes).value > 0.8


def _bins(x: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Equal-width bins over the range (the histogram's), by the floor formula."""
    return np.minimum(np.floor((x - x.min()) / (x.max() - x.min()) * num_bins), num_bins - 1).astype(int)


def _mi(a: np.ndarray, b: np.ndarray) -> float:
    """sum p(a, b) log(p(a, b) / (p(a) p(b))) by counting."""
    total = 0.0
    for x in np.unique(a):
        for y in np.unique(b):
            p_xy = np.mean((a == x) & (b == y))
            if p_xy > 0:
                total += p_xy * np.log(p_xy / (np.mean(a == x) * np.mean(b == y)))
    return total


def test__mig_of_the_fixture_matches_counting():
    z, factors, sizes = _fixture()
    # the whole grid (num_train = S, a permutation of it): MI by counting, entropy H(v) = log N (uniform)
    expected = []
    for j, n in enumerate(sizes):
        mis = sorted((_mi(_bins(z[:, i]), factors[:, j]) for i in range(4)), reverse=True)
        expected.append((mis[0] - mis[1]) / np.log(n))
    result = mig(z, factors, sizes, num_train=12)
    np.testing.assert_allclose(result.per_factor, expected, atol=1e-12)
    np.testing.assert_allclose(result.value, np.mean(expected), atol=1e-12)


def test__modularity_of_the_fixture_matches_counting():
    z, factors, sizes = _fixture()
    # fewer states (12) than train + test: the training states are the documented independent draws,
    # default_rng(seed).integers(S, size=num_train); MI by counting, then 1 - sum_{j != top} m_j^2 /
    # (m_top^2 (K - 1)) per code, literally
    train = np.random.default_rng(7).integers(12, size=50)
    expected = []
    for i in range(4):
        m2 = [_mi(_bins(z[train, i]), factors[train, j]) ** 2 for j in range(2)]
        top = max(m2)
        expected.append(1 - (sum(m2) - top) / (top * 1) if top > 0 else 0.0)
    result = modularity_explicitness(z, factors, sizes, num_train=50, num_test=20, seed=7)
    np.testing.assert_allclose(result.per_code_modularity, expected, atol=1e-12)
    np.testing.assert_allclose(result.modularity, np.mean(expected), atol=1e-12)
    assert 0.5 < result.explicitness_test <= 1


def test__dci_in_closed_form_and_its_aggregation_by_hand():
    sizes = (3, 4)
    factors = _grid(sizes)
    kwargs = {"num_train": 60, "num_test": 30}
    # one code per factor: the trees use only it, R = I: D = C = I = 1
    separate = dci(factors.astype(float), factors, sizes, **kwargs)
    np.testing.assert_allclose(
        [separate.disentanglement, separate.completeness, separate.informativeness_test], 1.0, atol=1e-9
    )
    # one code for both (4 v0 + v1; the other code constant, importance 0): that code's importance is
    # split over two factors, entropy log2(2) = 1, so D = 0; each factor lives in one code, so C = 1
    both = np.stack([4.0 * factors[:, 0] + factors[:, 1], np.zeros(12)], axis=1)
    mixed = dci(both, factors, sizes, **kwargs)
    assert mixed.informativeness_test == 1.0 and mixed.importance[1] == (0.0, 0.0)
    np.testing.assert_allclose([mixed.disentanglement, mixed.completeness], [0.0, 1.0], atol=1e-9)
    # the aggregation, by the paper's formulas written out, on the fixture's importance matrix
    z, factors, sizes = _fixture()
    result = dci(z, factors, sizes, importance="logistic", **kwargs)
    r = np.array(result.importance)
    d = 0.0
    for i in range(4):
        p = r[i] / r[i].sum()
        d += (1 + sum(x * np.log(x) / np.log(2) for x in p if x > 0)) * r[i].sum() / r.sum()
    c = np.mean([1 + sum(x * np.log(x) / np.log(4) for x in r[:, j] / r[:, j].sum() if x > 0) for j in range(2)])
    np.testing.assert_allclose([result.disentanglement, result.completeness], [d, c], atol=1e-12)


def test__sap_and_factor_vae_score_in_closed_form():
    sizes = (2, 2)
    factors = np.tile(_grid(sizes), (50, 1))
    z = 20.0 * factors - 10.0  # +-10: separable by one code with margin (w = 0.1 at C = 0.01)
    # each code predicts its factor perfectly and the other only as a function of the wrong factor: chance,
    # 1/2 on a balanced test set (up to the draw): SAP = 1 - 1/2 per factor
    result = sap(z, factors, sizes, num_train=100, num_test=100)
    np.testing.assert_allclose(result.per_factor, 0.5, atol=0.1)
    # FactorVAE: fixing a factor zeroes its own code's variance, so every vote is right: 1
    assert factor_vae_score(z, factors, sizes, batch_size=8, num_train=200, num_eval=200).eval_accuracy == 1.0
    # one code carries both (the other constant: not active): every vote goes to that code, whose majority
    # factor gets about half of the votes (factors are chosen uniformly)
    one = np.stack([2.0 * factors[:, 0] + factors[:, 1], np.zeros(len(factors))], axis=1)
    score = factor_vae_score(one, factors, sizes, batch_size=8, num_train=2000, num_eval=2000)
    assert score.active_dims == 1 and abs(score.eval_accuracy - 0.5) < 0.05


def test__summary_to_dict_and_constant_factors():
    sizes = (3, 4, 1)
    factors = _grid(sizes)
    z = _embedding(factors[:, :2], sizes[:2])
    result = summary(z, factors, sizes, planes=np.array([[0, 1], [2, 3], [0, 2]]), **_SMALL, dci_importance="logistic")
    d = result.to_dict()
    assert set(d) == {"d_lsbd", "probe_r2", "raw", "angles", "planes_given"}
    assert set(d["raw"]) == {"mig", "dci", "sap", "modularity", "factor_vae"}
    assert d["d_lsbd"]["per_factor"][2] is None and d["raw"]["mig"]["per_factor"][2] is None
    assert result.d_lsbd.value < 1e-12 and np.isnan(result.d_lsbd.per_factor[2])
    json.dumps(d, allow_nan=False)
    found = summary(z, factors, sizes, **_SMALL, dci_importance="logistic")
    assert not found.planes_given and found.angles.mig.value > 0.9
