"""GRU4Rec: the recurrent baseline trains like SASRec, beats popularity on synthetic data, round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from seqlens import GRU4Rec, evaluate, leave_one_out, load, synthetic_log
from seqlens.errors import DataError
from tests.recommenders.conftest import check_recommendations


@pytest.fixture(scope="module")
def gru(synth_split):
    return GRU4Rec(dim=16, max_len=20, epochs=3, progress=False).fit(synth_split.train, synth_split.valid)


def test_learns_a_cycle(make_log):
    """Every user walks the cycle i0 -> i1 -> ... -> i9 -> i0 from a random start: the next item is certain."""
    rng = np.random.default_rng(0)
    log = make_log(
        [(f"u{u}", f"i{(start + t) % 10}", t) for u in range(60) for start in [rng.integers(10)] for t in range(12)]
    )
    split = leave_one_out(log)
    model = GRU4Rec(dim=16, max_len=20, epochs=30, lr=3e-3, dropout=0.0, progress=False).fit(split.train)
    result = evaluate(model, split.test, split.test_history, exclude_seen=False)
    assert result.summary["recall@1"] >= 0.6  # a model that learned nothing gets about 0.1


def test_validation_drives_the_history(gru):
    assert 1 <= len(gru.history_) <= 3 and "ndcg@10" in gru.history_[0]


def test_recommend_and_round_trip(gru, tmp_path):
    recs = gru.recommend(users=["u1", "u2"], k=5)
    check_recommendations(recs, ["u1", "u2"], 5, gru)
    gru.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert isinstance(again, GRU4Rec) and again.get_params() == gru.get_params()
    assert again.recommend(users=["u1", "u2"], k=5).equals(recs)


@pytest.mark.parametrize("params", [dict(layers=0), dict(dropout=1.0), dict(loss="hinge")])
def test_bad_parameters_are_refused_by_fit(params):
    with pytest.raises(DataError, match=next(iter(params))):
        GRU4Rec(**params).fit(synthetic_log(n_users=20, seed=0))
