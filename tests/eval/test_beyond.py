"""Beyond-accuracy measures and per-bucket breakdowns on hand-checked lists."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seqlens.eval.beyond import (
    LENGTH_BUCKETS,
    beyond_accuracy,
    breakdown,
    by_target_popularity,
    gini,
    popularity_bucket,
)


def test_gini_extremes():
    assert gini(np.array([3, 3, 3])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (n - 1) / n when one item gets everything
    assert gini(np.zeros(4)) == 0.0


def test_beyond_accuracy_by_hand():
    popularity = np.array([0, 10, 5, 1, 0])  # index 0 = padding; items 1..4
    top = np.array([[1, 2], [1, 3], [1, 0]])  # the last user had only one candidate left
    m = beyond_accuracy(top, popularity)
    assert m["coverage@2"] == pytest.approx(3 / 4)
    # percentiles (rank max, pct): item1 1.0, item2 0.75, item3 0.5, item4 0.25
    assert m["popularity_percentile@2"] == pytest.approx((1.0 * 3 + 0.75 + 0.5) / 5)
    # exposure over the 4 items: [3, 1, 1, 0]
    assert m["gini@2"] == pytest.approx(gini(np.array([3, 1, 1, 0])))
    total = 10 + 5 + 1 + 1  # item 4 never interacted with counts as once
    expected = (3 * -math.log2(10 / total) - math.log2(5 / total) - math.log2(1 / total)) / 5
    assert m["novelty@2"] == pytest.approx(expected)


def test_breakdown_by_history_length():
    per_user = pd.DataFrame({"history_len": [1, 5, 6, 20, 21, 80], "ndcg@10": [0, 1, 0.5, 0.5, 0.2, 0.4]})
    table = breakdown(per_user, "history_len", LENGTH_BUCKETS, ["ndcg@10"])
    assert list(table.index) == ["1-5", "6-20", "21-50", "51+"]
    assert table["users"].tolist() == [2, 2, 1, 1]
    assert table["ndcg@10"].tolist() == pytest.approx([0.5, 0.5, 0.2, 0.4])


def test_popularity_buckets_split_interactions_into_thirds():
    # item 1 alone holds 60 of 100 interactions -> head; items 2, 3 (20, 10) -> torso; 4, 5 -> tail; 6 unseen
    counts = np.array([0, 60, 20, 10, 6, 4, 0])
    assert popularity_bucket(counts).tolist() == ["unseen", "head", "torso", "tail", "tail", "tail", "unseen"]


def test_breakdown_by_target_popularity():
    counts = np.array([0, 60, 20, 10, 6, 4, 0])
    per_user = pd.DataFrame({"ndcg@10": [1.0, 0.5, 0.0, 0.2, 0.4]})
    table = by_target_popularity(per_user, np.array([1, 1, 3, 4, 6]), counts, ["ndcg@10"])
    assert table["users"].tolist() == [2, 0, 2, 1]
    assert table.index.tolist() == ["head", "torso", "tail", "unseen"]
    assert table.loc["head", "ndcg@10"] == pytest.approx(0.75)
    assert table.loc["tail", "ndcg@10"] == pytest.approx(0.1)
    assert math.isnan(table.loc["torso", "ndcg@10"])
