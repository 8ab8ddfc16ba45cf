"""Top-K lists made elsewhere, scored with evaluate's protocol: exact at every K <= the list length."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import seqlens
from seqlens.eval.lists import score_lists


def test_top_k_lists_score_like_full_ranking(synth_split, fitted):
    """Our model's own top-20 lists, scored as lists, give the full-ranking metrics at every K <= 20."""
    split = synth_split
    recs = fitted.recommend(users=split.test.df["user_id"].to_numpy(), k=20)
    items = np.sort(split.train.df["item_id"].unique())
    scored, _ = score_lists(recs, split, items)
    full = seqlens.evaluate(fitted, split.test, split.test_history).summary
    assert scored["metrics"].keys() == full.keys()
    for name, value in full.items():
        assert scored["metrics"][name] == pytest.approx(value, abs=1e-12), name
    assert scored["metrics"]["recall@20"] > 0  # the check is not vacuous
    p = scored["protocol"]
    assert (p["seen_items_in_lists"], p["unknown_items_in_lists"], p["users_without_list"]) == (0, 0, 0)
    assert p["n_users"] == split.test.n_users


def test_list_defects_are_counted_and_never_help(synth_split):
    split = synth_split
    items = np.sort(split.train.df["item_id"].unique())
    test = split.test.df.set_index("user_id")["item_id"]
    history = split.test_history.df.groupby("user_id")["item_id"].agg(set)
    users = test.index.to_numpy()
    fresh = [u for u in users if test[u] not in history[u]][:3]  # targets not seen before: a clean count
    seen = split.test_history.df.groupby("user_id")["item_id"].first()
    rows = [
        (fresh[0], seen[fresh[0]], 1),
        (fresh[0], test[fresh[0]], 2),  # a seen item takes rank 1
        (fresh[1], test[fresh[1]], 1),  # a hit at rank 1
        (fresh[2], "no-such-item", 1),
    ]  # unknown item; others: no list
    recs = pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])
    scored, _ = score_lists(recs, split, items, k=5)
    n = len(users)
    assert scored["metrics"]["recall@1"] == pytest.approx(1 / n)
    assert scored["metrics"]["recall@5"] == pytest.approx(2 / n)
    assert scored["metrics"]["ndcg@5"] == pytest.approx((1 + 1 / np.log2(3)) / n)
    p = scored["protocol"]
    assert p["seen_items_in_lists"] == 1 and p["unknown_items_in_lists"] == 1
    assert p["users_without_list"] == n - 3
