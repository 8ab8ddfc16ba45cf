"""Paired significance for per-user metrics: bootstrap confidence intervals and a sign-flip test.

Both models are evaluated on the same users, so the comparison is on per-user differences: that
removes the between-user variance, which dwarfs the difference between two good models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 256  # resamples drawn at once: bounds memory at CHUNK x n_users


@dataclass(frozen=True)
class PairedDifference:
    """Mean of `a - b` over users, its bootstrap confidence interval, and a two-sided p-value."""

    mean: float
    low: float
    high: float
    p_value: float
    n: int
    level: float

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no detectable difference"


def _paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two 1-d arrays of one length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"need at least 2 paired values, got {len(a)}")
    return a - b


def bootstrap_ci(diff: np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `diff` (users resampled with replacement)."""
    rng = np.random.default_rng(seed)
    n = len(diff)
    means = np.concatenate(
        [diff[rng.integers(0, n, size=(min(CHUNK, n_boot - lo), n))].mean(axis=1) for lo in range(0, n_boot, CHUNK)]
    )
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def sign_flip_p(diff: np.ndarray, n_perm: int = 2000, seed: int = 0) -> float:
    """Two-sided randomisation test of 'no difference': under it each user's difference is as likely negated."""
    rng = np.random.default_rng(seed)
    observed = abs(diff.mean())
    hits = 0
    for lo in range(0, n_perm, CHUNK):
        signs = rng.integers(0, 2, size=(min(CHUNK, n_perm - lo), len(diff))) * 2 - 1
        hits += int((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-15).sum())
    return (hits + 1) / (n_perm + 1)


def paired_difference(
    a: np.ndarray, b: np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> PairedDifference:
    """Compare per-user values `a` (a model) with `b` (the reference) on the same users, in the same order."""
    diff = _paired(a, b)
    low, high = bootstrap_ci(diff, level, n_boot, seed)
    return PairedDifference(float(diff.mean()), low, high, sign_flip_p(diff, n_boot, seed), len(diff), level)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values: the family-wise error stays at the level across all the tests."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def format_p(p: float) -> str:
    """A p-value as printed: "< 0.001" below what a 2,000-draw randomisation test can resolve."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
