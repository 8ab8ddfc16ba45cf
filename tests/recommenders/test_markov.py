"""MarkovChain: transition counts from the last item, popularity back-off, hand-checked."""

from __future__ import annotations

import pytest

from seqlens import MarkovChain, evaluate, load
from tests.recommenders.conftest import check_recommendations


@pytest.fixture
def chain_log(make_log):
    # transitions: a->b twice, a->c once, b->c twice, c->a once; popularity a 4, b 2, c 3, d 1
    return make_log(
        [
            ("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3),
            ("u2", "a", 1), ("u2", "b", 2), ("u2", "c", 3), ("u2", "a", 4),
            ("u3", "a", 1), ("u3", "c", 2),
            ("u4", "d", 1),
        ]
    )  # fmt: skip


def test_scores_are_transition_counts_plus_backoff(chain_log):
    model = MarkovChain().fit(chain_log)
    recs = model.recommend(histories={"x": ["d", "a"]}, k=4, exclude_seen=False)
    assert recs["item_id"].tolist() == ["b", "c", "a", "d"]
    # counts + popularity / (max popularity + 1) with max popularity 4 (a)
    assert recs["score"].tolist() == pytest.approx([2 + 2 / 5, 1 + 3 / 5, 4 / 5, 1 / 5])


def test_only_the_last_item_matters(chain_log):
    model = MarkovChain().fit(chain_log)
    a = model.recommend(histories={"x": ["b"]}, k=3, exclude_seen=False)
    b = model.recommend(histories={"x": ["a", "c", "d", "b"]}, k=3, exclude_seen=False)
    assert a["item_id"].tolist() == b["item_id"].tolist() == ["c", "a", "b"]


def test_item_never_followed_falls_back_to_popularity(chain_log):
    model = MarkovChain().fit(chain_log)
    recs = model.recommend(histories={"x": ["d"]}, k=3)
    assert recs["item_id"].tolist() == ["a", "c", "b"]
    assert recs["score"].tolist() == pytest.approx([4 / 5, 3 / 5, 2 / 5])


def test_no_transition_crosses_users(chain_log):
    """u3's history ends in c and u4's starts with d: c->d must not be counted."""
    model = MarkovChain().fit(chain_log)
    scores = model.recommend(histories={"x": ["c"]}, k=4, exclude_seen=False).set_index("item_id")["score"]
    assert scores["d"] == pytest.approx(1 / 5)
    assert scores["a"] == pytest.approx(1 + 4 / 5)


def test_round_trip_and_evaluation(chain_log, synth_split, tmp_path):
    model = MarkovChain().fit(synth_split.train)
    check_recommendations(model.recommend(users=["u1", "u2"], k=5), ["u1", "u2"], 5, model)
    model.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert again.recommend(users=["u1"], k=5).equals(model.recommend(users=["u1"], k=5))
    result = evaluate(model, synth_split.test, synth_split.test_history)
    assert 0 < result.summary["ndcg@10"] <= result.summary["recall@10"] <= 1
