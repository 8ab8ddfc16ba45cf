"""Full-ranking metrics and the evaluation protocol, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from seqlens.data.log import InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.eval import evaluate, exclude, metrics_from_ranks, target_ranks
from seqlens.eval.metrics import MISS

INF = float("-inf")


def ranks(scores, targets):
    return target_ranks(torch.tensor(scores), torch.tensor(targets)).tolist()


# --- ranks ----------------------------------------------------------------------------------------
def test_rank_is_one_plus_number_of_better_items():
    scores = [[INF, 0.9, 0.1, 0.5, 0.3], [INF, 0.9, 0.1, 0.5, 0.3]]
    assert ranks(scores, [1, 2]) == [1, 4]


def test_ties_are_pessimistic():
    # the target ties with two other items: it ranks below both
    assert ranks([[INF, 0.5, 0.5, 0.5, 0.1]], [2]) == [3]
    assert ranks([[INF, 0.9, 0.5, 0.5, 0.5]], [2]) == [4]
    assert ranks([[INF, 0.0, 0.0, 0.0, 0.0]], [1]) == [4]


def test_excluded_items_do_not_count():
    scores = torch.tensor([[INF, 0.9, 0.8, 0.1], [INF, 0.9, 0.8, 0.1]])
    history = torch.tensor([[0, 1], [0, 0]])  # row 0 saw item 1; row 1 has only padding
    excluded = exclude(scores, history)
    assert excluded[0, :2].tolist() == [INF, INF] and torch.equal(excluded[0, 2:], scores[0, 2:])
    assert excluded[1].tolist() == scores[1].tolist()
    assert target_ranks(excluded, torch.tensor([3, 3])).tolist() == [2, 3]


def test_excluded_or_padding_target_is_a_miss():
    scores = exclude(torch.tensor([[INF, 0.9, 0.8, 0.1]] * 2), torch.tensor([[3], [1]]))
    assert ranks(scores.tolist(), [3, 0]) == [MISS, MISS]


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        ranks([[INF, float("nan"), 0.1]], [2])


# --- metrics --------------------------------------------------------------------------------------
def test_metrics_hand_values():
    m = metrics_from_ranks(np.array([1, 3, 5, 6, MISS]), ks=(1, 5))
    assert m["recall@1"].tolist() == [1, 0, 0, 0, 0]
    assert m["recall@5"].tolist() == [1, 1, 1, 0, 0]
    np.testing.assert_allclose(m["ndcg@5"], [1.0, 0.5, 1 / math.log2(6), 0, 0])
    np.testing.assert_allclose(m["mrr@5"], [1.0, 1 / 3, 1 / 5, 0, 0])
    np.testing.assert_allclose(m["ndcg@1"], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(m["mrr@1"], [1, 0, 0, 0, 0])
    assert set(m) == {f"{name}@{k}" for name in ("recall", "ndcg", "mrr") for k in (1, 5)}


def test_metrics_default_ks_boundaries():
    m = metrics_from_ranks(np.array([10, 11, 20, 21]))
    assert m["recall@10"].tolist() == [1, 0, 0, 0]
    assert m["recall@20"].tolist() == [1, 1, 1, 0]
    assert m["ndcg@10"][0] == pytest.approx(1 / math.log2(11))
    assert m["mrr@20"].tolist() == pytest.approx([0.1, 1 / 11, 0.05, 0.0])


# --- evaluate() with a fake scorer ----------------------------------------------------------------
class FixedScorer:
    """Scores items a..e as 5, 4, 3, 2, 1 whatever the history."""

    def __init__(self):
        self.ids = ["a", "b", "c", "d", "e"]
        self.n_items_ = len(self.ids)
        self.calls = []

    def encode_items(self, item_ids):
        return np.array([self.ids.index(i) + 1 if i in self.ids else 0 for i in item_ids], dtype=np.int64)

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> torch.Tensor:
        self.calls.append((histories, rows))
        scores = torch.tensor([INF, 5.0, 4.0, 3.0, 2.0, 1.0])
        return scores.expand(len(rows), -1).clone()


def log_of(rows):
    return InteractionLog.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]))


@pytest.fixture
def eval_data():
    history = log_of(
        [("u1", "a"), ("u1", "unknown-item"), ("u2", "b"), ("u2", "c"), ("u3", "d"), ("u4", "a"), ("u9", "e")]
    )
    # u1: c after a; u2: e after b, c; u3: d again; u4: an item the model does not know; u5: no history
    targets = log_of([("u1", "c"), ("u2", "e"), ("u3", "d"), ("u4", "zz"), ("u5", "a")])
    return targets, history


def test_evaluate_excluding_seen_items(eval_data):
    targets, history = eval_data
    result = evaluate(FixedScorer(), targets, history, ks=(1, 5))
    per_user = result.per_user.set_index("user_id")
    assert per_user["rank"].to_dict() == {"u1": 2, "u2": 3, "u3": -1, "u4": -1, "u5": 1}
    assert result.summary["recall@1"] == pytest.approx(1 / 5)
    assert result.summary["recall@5"] == pytest.approx(3 / 5)
    assert result.summary["ndcg@5"] == pytest.approx((1 / math.log2(3) + 0.5 + 1.0) / 5)
    assert result.summary["mrr@5"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 5)
    assert (
        per_user.loc["u3", "ndcg@5"] == 0 and per_user.loc["u3", "mrr@5"] == 0 and per_user.loc["u3", "recall@5"] == 0
    )
    assert result.protocol == {
        "ranking": "full (all items)",
        "ties": "pessimistic",
        "exclude_seen": True,
        "n_users": 5,
        "n_items": 5,
        "unknown_targets": 1,
        "empty_histories": 1,
        "targets_in_history": 1,
    }


def test_evaluate_keeping_seen_items(eval_data):
    targets, history = eval_data
    result = evaluate(FixedScorer(), targets, history, ks=(1, 5), exclude_seen=False)
    assert result.per_user.set_index("user_id")["rank"].to_dict() == {"u1": 3, "u2": 5, "u3": 4, "u4": -1, "u5": 1}
    assert result.summary["recall@5"] == pytest.approx(4 / 5)
    assert result.summary["mrr@5"] == pytest.approx((1 / 3 + 1 / 5 + 1 / 4 + 1) / 5)
    assert result.protocol["exclude_seen"] is False


def test_evaluate_passes_histories_without_unknown_items_shortest_first(eval_data):
    """Each user's history, unknown items dropped; batched shortest first (less padding per batch)."""
    targets, history = eval_data
    scorer = FixedScorer()
    evaluate(scorer, targets, history)
    ((histories, rows),) = scorer.calls
    assert [histories[i].tolist() for i in range(5)] == [[1], [2, 3], [4], [1], []]
    assert rows.tolist() == [4, 0, 2, 3, 1]


def test_evaluate_batches_give_the_same_result(eval_data):
    targets, history = eval_data
    scorer = FixedScorer()
    small = evaluate(scorer, targets, history, batch_size=2)
    assert len(scorer.calls) == 3
    pd.testing.assert_frame_equal(small.per_user, evaluate(FixedScorer(), targets, history).per_user)


def test_evaluate_refuses_two_targets_for_one_user(eval_data):
    _, history = eval_data
    with pytest.raises(DataError, match="'u1' has more than one target"):
        evaluate(FixedScorer(), log_of([("u1", "a"), ("u1", "b")]), history)


def test_evaluate_with_a_history_of_only_unknown_items():
    result = evaluate(FixedScorer(), log_of([("u1", "b")]), log_of([("u1", "zz")]), ks=(5,))
    assert result.per_user["rank"].tolist() == [2]
    assert result.protocol["empty_histories"] == 1


def test_sampled_mode_is_never_the_default_and_is_labelled(eval_data):
    targets, history = eval_data
    assert evaluate(FixedScorer(), targets, history).protocol["ranking"] == "full (all items)"
    sampled = evaluate(FixedScorer(), targets, history, ks=(1, 5), sampled="uniform", n_negatives=2)
    assert sampled.protocol["ranking"].startswith("SAMPLED (2 uniform negatives")


def test_sampled_negatives_avoid_history_and_target(eval_data):
    """u1 (history a, target c) has exactly 3 candidates b, d, e: asking for 3 takes all of them, so c
    ranks below b only (rank 2), as in full ranking with seen items excluded."""
    targets, history = eval_data
    for seed in range(5):
        result = evaluate(FixedScorer(), targets, history, ks=(5,), sampled="popularity", n_negatives=2, seed=seed)
        rank = result.per_user.set_index("user_id")["rank"]
        assert rank["u5"] == 1 and rank["u4"] == -1 and rank["u3"] == -1  # unknown / excluded targets still miss
    only_u1 = log_of([("u1", "c")])
    full = evaluate(FixedScorer(), only_u1, history, ks=(5,), sampled="uniform", n_negatives=3)
    assert full.per_user["rank"].tolist() == [2]
    with pytest.raises(DataError, match="fewer than 4 candidate negatives"):
        evaluate(FixedScorer(), only_u1, history, sampled="uniform", n_negatives=4)
    with pytest.raises(DataError, match="sampled='random'"):
        evaluate(FixedScorer(), only_u1, history, sampled="random")
