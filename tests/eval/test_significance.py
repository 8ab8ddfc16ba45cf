"""Paired bootstrap intervals and the sign-flip test, checked against simulated data with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from seqlens.eval.significance import bootstrap_ci, paired_difference, sign_flip_p


def test_ci_covers_the_true_difference_about_95_percent_of_the_time():
    """A statistical test with a fixed seed: 300 simulated experiments, coverage within [0.92, 0.98]."""
    rng = np.random.default_rng(12345)
    true_diff, covered, reps = 0.01, 0, 300
    for rep in range(reps):
        base = rng.binomial(1, 0.1, size=400).astype(float)  # per-user hits, like recall@10
        a = base + rng.normal(true_diff, 0.2, size=400)
        low, high = bootstrap_ci(a - base, n_boot=1000, seed=rep)
        covered += low <= true_diff <= high
    assert 0.92 <= covered / reps <= 0.98


def test_clear_difference_is_detected_and_none_is_not():
    rng = np.random.default_rng(0)
    b = rng.random(2000)
    better = paired_difference(b + 0.05 + rng.normal(0, 0.05, 2000), b)
    assert better.verdict == "better" and better.p_value < 0.01 and better.low > 0
    worse = paired_difference(b - 0.05, b)
    assert worse.verdict == "worse" and worse.high < 0
    same = paired_difference(b + rng.normal(0, 0.05, 2000), b)
    assert same.verdict == "no detectable difference" and same.p_value > 0.01
    assert same.low < 0 < same.high


def test_p_value_is_uniform_ish_under_the_null():
    """Under no difference, p < 0.05 in roughly 5% of experiments (fixed seed, loose tolerance)."""
    rng = np.random.default_rng(7)
    ps = [sign_flip_p(rng.normal(0, 1, 100), n_perm=500, seed=i) for i in range(200)]
    assert 0.01 <= np.mean(np.array(ps) < 0.05) <= 0.10


def test_identical_models_have_zero_difference_and_p_one():
    a = np.array([0.0, 1.0, 0.5, 0.25])
    d = paired_difference(a, a)
    assert (d.mean, d.low, d.high, d.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert d.verdict == "no detectable difference"


def test_bad_input():
    with pytest.raises(ValueError, match="one length"):
        paired_difference(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference(np.zeros(1), np.zeros(1))
