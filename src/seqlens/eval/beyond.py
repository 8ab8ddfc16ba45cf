"""Beyond accuracy: how much of the catalogue gets recommended, how popular and how novel it is.

All measures take the top-k lists (internal indices, from `top_k_items`) and the training popularity
of each item (interaction counts indexed by internal index, index 0 = padding).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LENGTH_BUCKETS = (0, 5, 20, 50)  # history length 1-5, 6-20, 21-50, 51+
POPULARITY_BUCKETS = ("head", "torso", "tail", "unseen")


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 = everyone equal, -> 1 = all on one."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if len(v) == 0 or v.sum() == 0:
        return 0.0
    n = len(v)
    return float((2 * np.arange(1, n + 1) - n - 1) @ v / (n * v.sum()))


def beyond_accuracy(top: np.ndarray, popularity: np.ndarray) -> dict[str, float]:
    """coverage@k, mean popularity percentile, Gini of exposure and novelty of top-k lists [n_users, k]."""
    k = top.shape[1]
    counts = np.asarray(popularity, dtype=np.float64)[1:]
    n_items = len(counts)
    recommended = top[top > 0]
    exposure = np.bincount(recommended, minlength=n_items + 1)[1:]
    # percentile of each item's popularity among all items (1 = the most popular, ties share the top value)
    percentile = pd.Series(counts).rank(method="max", pct=True).to_numpy()
    seen = np.maximum(counts, 1.0)  # items never interacted with count as seen once
    share = seen / seen.sum()
    return {
        f"coverage@{k}": float((exposure > 0).sum() / n_items),
        f"popularity_percentile@{k}": float(percentile[recommended - 1].mean()) if len(recommended) else 0.0,
        f"gini@{k}": gini(exposure),
        f"novelty@{k}": float(-np.log2(share[recommended - 1]).mean()) if len(recommended) else 0.0,
    }


def breakdown(per_user: pd.DataFrame, by: str | np.ndarray, edges: tuple[int, ...], metrics: list[str]) -> pd.DataFrame:
    """Mean metrics and user counts per bucket of `by` (a column or values): (edges[i], edges[i+1]]."""
    values = per_user[by].to_numpy() if isinstance(by, str) else np.asarray(by)
    labels = [f"{lo + 1}-{hi}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1] + 1}+"]
    return grouped(per_user, pd.cut(values, bins=[*edges, np.inf], labels=labels, right=True), metrics)


def popularity_bucket(popularity: np.ndarray) -> np.ndarray:
    """Label each internal item "head", "torso" or "tail": the most popular items holding the first third
    of all training interactions, the next third, the rest; items never seen in training are "unseen".

    Equal-interaction-mass buckets, so "head" is a handful of items and "tail" most of the catalogue.
    """
    counts = np.asarray(popularity, dtype=np.float64).copy()
    counts[0] = 0  # padding / unknown
    order = np.argsort(-counts, kind="stable")
    mass = np.cumsum(counts[order]) / max(counts.sum(), 1.0)
    before = mass - counts[order] / max(counts.sum(), 1.0)  # mass of strictly more popular items
    labels = np.empty(len(counts), dtype=object)
    labels[order] = np.select([before < 1 / 3, before < 2 / 3], ["head", "torso"], "tail")
    labels[counts == 0] = "unseen"
    return labels


def by_target_popularity(
    per_user: pd.DataFrame, target_index: np.ndarray, popularity: np.ndarray, metrics: list[str]
) -> pd.DataFrame:
    """Mean metrics and user counts per popularity bucket of each user's target item (see `popularity_bucket`)."""
    labels = popularity_bucket(popularity)[np.asarray(target_index)]
    return grouped(per_user, pd.Categorical(labels, categories=POPULARITY_BUCKETS), metrics)


def grouped(per_user: pd.DataFrame, bucket, metrics: list[str]) -> pd.DataFrame:
    """Mean metrics and user counts per bucket (a categorical aligned with the rows of `per_user`)."""
    frame = per_user[metrics].assign(bucket=bucket)
    table = frame.groupby("bucket", observed=False)[metrics].mean()
    table.insert(0, "users", frame.groupby("bucket", observed=False).size())
    return table
