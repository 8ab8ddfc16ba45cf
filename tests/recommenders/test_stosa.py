"""STOSA as an estimator: learns the synthetic rules, saves and loads exactly, and every explanation method runs on
it (its attention weights are returned like SASRec's)."""

from __future__ import annotations

import pytest
import torch

from seqlens import STOSA, Popular, evaluate, load
from seqlens.explain import explain
from seqlens.explain.methods import METHODS
from tests.recommenders.conftest import check_recommendations


@pytest.fixture(scope="module")
def stosa(synth_split) -> STOSA:
    return STOSA(max_len=20, epochs=12, progress=False, seed=0).fit(synth_split.train, synth_split.valid)


def test_defaults_are_the_beauty_configuration():
    params = STOSA().get_params()
    assert {k: params[k] for k in ("layers", "heads", "max_len", "dropout", "loss", "lr", "pvn_weight")} == {
        "layers": 1, "heads": 4, "max_len": 100, "dropout": 0.3, "loss": "bpr", "lr": 1e-3, "pvn_weight": 0.005,
    }  # fmt: skip


def test_learns_more_than_popularity(stosa, synth_split):
    ours = evaluate(stosa, synth_split.test, synth_split.test_history).summary["ndcg@10"]
    popular = evaluate(Popular().fit(synth_split.train), synth_split.test, synth_split.test_history).summary["ndcg@10"]
    assert ours > popular


def test_recommend_save_and_load_round_trip(stosa, tmp_path):
    users = list(stosa.user_ids_[:6])
    recs = stosa.recommend(users=users, k=5)
    check_recommendations(recs, users, 5, stosa)
    stosa.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert type(again) is STOSA and again.get_params() == stosa.get_params()
    torch.testing.assert_close(
        torch.tensor(again.recommend(users=users, k=5).score.values), torch.tensor(recs.score.values)
    )


def test_cross_entropy_over_negative_distances_trains_too(synth_split):
    model = STOSA(max_len=20, epochs=2, loss="ce", progress=False).fit(synth_split.train)
    losses = [r["loss"] for r in model.history_]
    assert losses[1] < losses[0]


@pytest.mark.parametrize("method", METHODS)
def test_every_explanation_method_runs_on_stosa(stosa, method):
    user = stosa.user_ids_[3]
    e = explain(stosa, user, method=method)
    assert e.recommended == stosa.recommend(users=[user], k=1).item_id[0]
    assert len(e.scores) == len(e.items) > 0 and torch.isfinite(torch.tensor(e.scores)).all()
