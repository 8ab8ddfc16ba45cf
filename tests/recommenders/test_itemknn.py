"""ItemKNN: cosine co-occurrence similarity, recency-weighted sum over the history, hand-checked."""

from __future__ import annotations

import math

import pytest

from seqlens import ItemKNN, Popular, evaluate, load
from seqlens.errors import DataError
from tests.recommenders.conftest import check_recommendations


@pytest.fixture
def knn_log(make_log):
    # users of each item: a {1,2,3}, b {1,2}, c {2,3}, d {4}
    return make_log(
        [
            ("u1", "a", 1), ("u1", "b", 2), ("u1", "a", 3),
            ("u2", "a", 1), ("u2", "b", 2), ("u2", "c", 3),
            ("u3", "c", 1), ("u3", "a", 2),
            ("u4", "d", 1),
        ]
    )  # fmt: skip


def test_cosine_similarity_counts_users_not_repeats(knn_log):
    model = ItemKNN().fit(knn_log)
    recs = model.recommend(histories={"x": ["a"]}, k=4, exclude_seen=False).set_index("item_id")["score"]
    # sim(a, b) = 2 / sqrt(3 * 2), sim(a, c) = 2 / sqrt(3 * 2); a is not its own neighbour; d never co-occurs
    assert recs["b"] == pytest.approx(2 / math.sqrt(6))
    assert recs["c"] == pytest.approx(2 / math.sqrt(6))
    assert recs["a"] == 0.0


def test_recent_items_weigh_more(knn_log):
    model = ItemKNN(decay=0.5).fit(knn_log)
    scores = model.recommend(histories={"x": ["b", "c"]}, k=4, exclude_seen=False).set_index("item_id")["score"]
    # c is the most recent (weight 1), b the one before (weight 0.5)
    sim_ab, sim_bc, sim_ac = 2 / math.sqrt(6), 1 / math.sqrt(4), 2 / math.sqrt(6)
    assert scores["a"] == pytest.approx(1 * sim_ac + 0.5 * sim_ab)
    assert scores["b"] == pytest.approx(1 * sim_bc)
    assert scores["c"] == pytest.approx(0.5 * sim_bc)


def test_window_limits_the_history(knn_log):
    model = ItemKNN(window=1).fit(knn_log)
    a = model.recommend(histories={"x": ["c"]}, k=3, exclude_seen=False)
    b = model.recommend(histories={"x": ["b", "b", "c"]}, k=3, exclude_seen=False)
    assert a["score"].tolist() == b["score"].tolist()


def test_neighbors_keeps_the_most_similar(knn_log):
    model = ItemKNN(neighbors=1).fit(knn_log)
    assert model.neighbor_items_.shape[1] == 1
    scores = model.recommend(histories={"x": ["b"]}, k=3, exclude_seen=False).set_index("item_id")["score"]
    assert scores["a"] == pytest.approx(2 / math.sqrt(6))  # sim(b, a) > sim(b, c) = 0.5
    assert scores["c"] == 0.0


@pytest.mark.parametrize("params", [dict(neighbors=0), dict(window=-1), dict(decay=0.0), dict(decay=1.5)])
def test_bad_parameters(knn_log, params):
    with pytest.raises(DataError, match=next(iter(params))):
        ItemKNN(**params).fit(knn_log)


def test_beats_popularity_on_synthetic_and_round_trips(synth_split, tmp_path):
    model = ItemKNN().fit(synth_split.train)
    check_recommendations(model.recommend(users=["u1", "u2"], k=5), ["u1", "u2"], 5, model)
    ours = evaluate(model, synth_split.test, synth_split.test_history).summary["ndcg@10"]
    pop = evaluate(Popular().fit(synth_split.train), synth_split.test, synth_split.test_history).summary["ndcg@10"]
    assert ours > pop
    model.save(tmp_path / "m")
    assert load(tmp_path / "m").recommend(users=["u1"], k=5).equals(model.recommend(users=["u1"], k=5))
