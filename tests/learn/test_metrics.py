import re

import numpy as np
import pytest

from dyndis_learn.metrics import circular_probe


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
