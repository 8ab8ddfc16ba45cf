"""The approximate index returns `recommend`'s table; visiting every cluster it finds the exact top K."""

import builtins

import pytest

from seqlens.errors import DataError
from seqlens.recommenders.retrieval import ItemIndex, recall_against_exact

pytest.importorskip("faiss", reason="the approximate index needs faiss-cpu (pip install 'seqlens[ann]')")


def test_visiting_every_cluster_is_exact(sasrec, synth_split):
    users = list(sasrec.user_ids_[:40])
    index = ItemIndex(sasrec, nlist=4, nprobe=4)
    approximate = index.recommend(users=users, k=10)
    exact = sasrec.recommend(users=users, k=10)
    assert recall_against_exact(approximate, exact, 10) == 1.0
    assert list(approximate.columns) == list(exact.columns)
    seen = synth_split.train.concat(synth_split.valid).sequences()
    assert not any(item in seen[user] for user, item in zip(approximate.user_id, approximate.item_id))


def test_fewer_clusters_find_less_and_say_so(sasrec):
    users = list(sasrec.user_ids_[:40])
    exact = sasrec.recommend(users=users, k=10)
    recall = recall_against_exact(ItemIndex(sasrec, nlist=8, nprobe=1).recommend(users=users, k=10), exact, 10)
    assert 0.0 < recall < 1.0


def test_ad_hoc_histories(sasrec, synth_history):
    recs = ItemIndex(sasrec, nlist=4, nprobe=4).recommend(histories={"visitor": synth_history}, k=5)
    assert recs.user_id.tolist() == ["visitor"] * 5 and recs["rank"].tolist() == [1, 2, 3, 4, 5]
    assert not set(recs.item_id) & set(synth_history)


def test_without_faiss_the_error_says_what_to_install(sasrec, monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(DataError, match="pip install 'seqlens\\[ann\\]'"):
        ItemIndex(sasrec)
