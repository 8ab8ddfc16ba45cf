"""Popular: items ranked by their interaction count, whatever the history."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from seqlens import Popular, evaluate
from seqlens.errors import DataError
from tests.recommenders.conftest import check_recommendations


@pytest.fixture
def pop_log(make_log):
    # counts: a 4, b 3, c 2, d 1
    return make_log(
        [
            ("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3),
            ("u2", "a", 1), ("u2", "b", 2),
            ("u3", "a", 1), ("u3", "d", 2), ("u3", "b", 3), ("u3", "c", 4),
            ("u4", "a", 9),
        ]
    )  # fmt: skip


def test_ranks_by_count(pop_log):
    model = Popular().fit(pop_log)
    recs = model.recommend(histories={"new": ["d"]}, k=3)
    assert recs["item_id"].tolist() == ["a", "b", "c"]
    assert recs["score"].tolist() == [4.0, 3.0, 2.0]
    assert recs["rank"].tolist() == [1, 2, 3]
    everything = model.recommend(histories={"new": ["d"]}, k=4, exclude_seen=False)
    assert everything["item_id"].tolist() == ["a", "b", "c", "d"]
    assert everything["score"].tolist() == [4.0, 3.0, 2.0, 1.0]


def test_known_users_exclude_their_history(pop_log):
    model = Popular().fit(pop_log)
    recs = model.recommend(users=["u2", "u4"], k=2)
    assert recs["user_id"].tolist() == ["u2", "u2", "u4", "u4"]
    assert recs["item_id"].tolist() == ["c", "d", "b", "c"]


def test_fewer_rows_when_the_catalogue_runs_out(pop_log):
    model = Popular().fit(pop_log)
    recs = model.recommend(users=["u3", "u2"], k=3)  # u3 has seen every item, u2 all but two
    assert recs["user_id"].tolist() == ["u2", "u2"]
    assert recs["item_id"].tolist() == ["c", "d"]


def test_popular_on_synthetic(popular, synth_split):
    counts = Counter(synth_split.train.df["item_id"])
    recs = popular.recommend(histories={"x": ["i0"]}, k=10, exclude_seen=False)
    check_recommendations(recs, ["x"], 10, popular)
    assert recs["score"].tolist() == sorted(counts.values(), reverse=True)[:10]
    assert all(counts[i] == s for i, s in zip(recs["item_id"], recs["score"]))


def test_history_does_not_change_scores(popular):
    a = popular.recommend(histories={"x": ["i0"]}, k=10, exclude_seen=False)
    b = popular.recommend(histories={"x": ["i1", "i2", "i3"]}, k=10, exclude_seen=False)
    pd.testing.assert_series_equal(a["score"], b["score"])


def test_evaluate_popular(popular, synth_split):
    result = evaluate(popular, synth_split.test, synth_split.test_history)
    assert result.protocol["n_users"] == synth_split.test.n_users
    assert 0 < result.summary["ndcg@10"] < result.summary["recall@10"] <= 1


def test_fit_accepts_a_dataframe_and_rejects_other_things(pop_log):
    model = Popular().fit(pop_log.df)
    assert model.recommend(histories={"x": ["d"]}, k=1)["item_id"].tolist() == ["a"]
    with pytest.raises(DataError, match="expected an InteractionLog"):
        Popular().fit([("u", "a")])


def test_period_days_counts_only_the_last_days(pop_log):
    # times are in seconds: with a 5-second window (t >= 9 - 5) only u3's c (t=4) and u4's a (t=9) count
    model = Popular(period_days=5 / 86_400).fit(pop_log)
    recs = model.recommend(histories={"new": ["d"]}, k=4, exclude_seen=False)
    assert recs["item_id"].tolist() == ["a", "c", "b", "d"]  # a and c: 1 recent each, all-time count breaks ties
    assert recs["score"].tolist()[:2] == pytest.approx([1.8, 1.4])
    assert repr(model) == f"Popular(period_days={5 / 86_400!r})"


def test_period_days_needs_timestamps_and_a_positive_window(pop_log):
    untimed = pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "b"]})
    with pytest.raises(DataError, match="needs timestamps"):
        Popular(period_days=30).fit(untimed)
    with pytest.raises(DataError, match="period_days=0"):
        Popular(period_days=0).fit(pop_log)
