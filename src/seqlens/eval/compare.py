"""Offline A/B comparison: several models on the same users, each against a reference, paired per user.

Several seeds of one configuration are pooled: a user's value is the mean over seeds, and the table
also gives the mean and standard deviation of the seeds' summary metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from seqlens.data.log import USER
from seqlens.errors import DataError
from seqlens.eval.protocol import EvalResult
from seqlens.eval.significance import holm, paired_difference

METRICS = ("ndcg@10", "recall@10", "recall@1", "mrr@10")


def _pooled(name: str, runs: EvalResult | Sequence[EvalResult], metric: str) -> tuple[pd.Series, list[float]]:
    runs = [runs] if isinstance(runs, EvalResult) else list(runs)
    if not runs:
        raise DataError(f"model {name!r} has no evaluation results")
    if metric not in runs[0].per_user.columns:
        known = [c for c in runs[0].per_user.columns if "@" in c]
        raise DataError(f"unknown metric {metric!r}; choose from {', '.join(known)}")
    per_user = [r.per_user.set_index(USER)[metric] for r in runs]
    users = per_user[0].index
    for other in per_user[1:]:
        if len(other) != len(users) or not other.index.isin(users).all():
            raise DataError(f"model {name!r}: its seeds were evaluated on different users")
    pooled = pd.concat([p.reindex(users) for p in per_user], axis=1).mean(axis=1)
    return pooled, [r.summary[metric] for r in runs]


def compare(
    results: Mapping[str, EvalResult | Sequence[EvalResult]],
    reference: str,
    metrics: Sequence[str] = METRICS,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, metric): mean, seeds' std, difference to `reference` with CI, p-value, verdict.

    Every model must have been evaluated on the same users (the same split); the comparison is paired.
    One decision rule: a model is "better" or "worse" than the reference on a metric when the sign-flip
    p-value, Holm-adjusted over every (model, metric) test of the table (`p_holm`), is below 1 - `level`;
    the confidence interval is shown as computed, per test.
    """
    if reference not in results:
        raise DataError(f"reference model {reference!r} is not among {list(results)}")
    rows = []
    for metric in metrics:
        ref, _ = _pooled(reference, results[reference], metric)
        for name, runs in results.items():
            values, seeds = _pooled(name, runs, metric)
            if len(values) != len(ref) or not values.index.isin(ref.index).all():
                raise DataError(f"models {name!r} and {reference!r} were evaluated on different users")
            row = {
                "model": name, "metric": metric, "mean": float(values.mean()), "seeds": len(seeds),
                "seed_std": float(np.std(seeds, ddof=1)) if len(seeds) > 1 else 0.0, "n_users": len(values),
            }  # fmt: skip
            if name == reference:
                row.update(diff=0.0, ci_low=0.0, ci_high=0.0, p_value=1.0, verdict="reference")
            else:
                d = paired_difference(values.to_numpy(), ref.reindex(values.index).to_numpy(), level, n_boot, seed)
                row.update(diff=d.mean, ci_low=d.low, ci_high=d.high, p_value=d.p_value)
            rows.append(row)
    table = pd.DataFrame(rows)
    tests = table["verdict"].isna() if "verdict" in table else pd.Series(True, index=table.index)
    table.loc[tests, "p_holm"] = holm(table.loc[tests, "p_value"].to_numpy())
    table.loc[~tests, "p_holm"] = 1.0
    significant = tests & (table["p_holm"] < 1 - level)
    table.loc[tests, "verdict"] = np.where(
        significant[tests], np.where(table.loc[tests, "diff"] > 0, "better", "worse"), "no detectable difference"
    )
    return table
