"""Fitted models shared by the recommender tests (fitting is the slow part, so each is fitted once)."""

from __future__ import annotations

import pytest

from seqlens import Popular, SASRec

FAST = dict(dim=16, max_len=20, progress=False)


@pytest.fixture(scope="session")
def sasrec(synth_split) -> SASRec:
    """The small SASRec of the brief: 3 epochs, early stopping on the validation split."""
    return SASRec(epochs=3, **FAST).fit(synth_split.train, synth_split.valid)


@pytest.fixture(scope="session")
def popular(synth_split) -> Popular:
    return Popular().fit(synth_split.train)


@pytest.fixture(scope="session")
def synth_history(synth_split) -> list[str]:
    """An ad-hoc history of items the models know (a real user's training items, oldest first)."""
    return list(synth_split.train.sequences()["u3"])


def check_recommendations(recs, users, k, model):
    """The shape every `recommend` result has: k rows per user, ranks 1..k, scores non-increasing."""
    assert list(recs.columns) == ["user_id", "item_id", "score", "rank"]
    assert len(recs) == k * len(users)
    assert list(recs["user_id"].unique()) == [str(u) for u in users]
    known = set(model.item_ids_)
    for _, group in recs.groupby("user_id", sort=False):
        assert group["rank"].tolist() == list(range(1, k + 1))
        scores = group["score"].to_numpy()
        assert (scores[:-1] >= scores[1:]).all()
        assert group["item_id"].is_unique
        assert all(isinstance(i, str) and i in known for i in group["item_id"])
