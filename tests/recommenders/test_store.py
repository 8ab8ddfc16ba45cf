"""The model store: numbered versions, promotion history, rollback, and the errors a user meets."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

import seqlens
from seqlens.errors import ArtifactError, DataError
from seqlens.recommenders import ModelStore


@pytest.fixture(scope="module")
def saved(tmp_path_factory, sasrec, popular):
    root = tmp_path_factory.mktemp("store-models")
    sasrec.save(root / "sasrec")
    popular.save(root / "popular")
    return root


def test_versions_are_numbered_copies_that_load(tmp_path, saved, sasrec):
    store = ModelStore(tmp_path / "store", create=True)
    assert store.add(saved / "sasrec", note="first") == 1
    assert store.add(saved / "popular") == 2
    assert [(v.number, v.model, v.note, v.promoted) for v in store.versions()] == [
        (1, "SASRec", "first", False), (2, "Popular", "", False)
    ]  # fmt: skip
    assert store.promoted() is None
    loaded = seqlens.load(store.path(1))
    assert loaded.recommend(users=["u3"], k=5).equals(sasrec.recommend(users=["u3"], k=5))


def test_rollback_returns_through_the_promotion_history(tmp_path, saved):
    store = ModelStore(tmp_path / "store", create=True)
    for name in ("sasrec", "popular", "sasrec"):
        store.add(saved / name)
    store.promote(1)
    store.promote(2)
    store.promote(2)  # promoting what is served changes nothing
    store.promote(3)
    assert (store.promoted(), store.previous()) == (3, 2)
    assert store.rollback() == (3, 2)
    assert store.rollback() == (2, 1)
    assert [v.promoted for v in store.versions()] == [True, False, False]
    with pytest.raises(DataError, match="nothing to roll back to"):
        store.rollback()


def test_a_guarded_rollback_refuses_when_the_store_changed(tmp_path, saved):
    store = ModelStore(tmp_path / "store", create=True)
    for name in ("sasrec", "popular"):
        store.add(saved / name, promote=True)
    with pytest.raises(DataError, match="changed meanwhile"):
        store.rollback(expect=2)
    assert store.promoted() == 2


def test_concurrent_adds_get_distinct_numbers(tmp_path, saved):
    store = ModelStore(tmp_path / "store", create=True)
    with ThreadPoolExecutor(4) as pool:
        numbers = sorted(pool.map(lambda _: store.add(saved / "popular"), range(6)))
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert [v.number for v in ModelStore(tmp_path / "store").versions()] == numbers


def test_what_would_not_load_is_refused_before_it_is_numbered(tmp_path, saved):
    store = ModelStore(tmp_path / "store", create=True)
    with pytest.raises(ArtifactError, match="config.json: missing"):
        store.add(tmp_path)
    assert store.versions() == [] and not (tmp_path / "store" / "v1").exists()


def test_clear_errors(tmp_path, saved):
    with pytest.raises(ArtifactError, match="not a model store"):
        ModelStore(tmp_path / "none")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(ArtifactError, match="not empty"):
        ModelStore(tmp_path / "busy", create=True)
    store = ModelStore(tmp_path / "store", create=True)
    with pytest.raises(DataError, match="no version 4"):
        store.promote(4)
    (tmp_path / "store" / "store.json").write_text('{"format": 1,')
    with pytest.raises(ArtifactError, match=r"store.json:1:\d+: not valid JSON"):
        store.versions()
    (tmp_path / "store" / "store.json").write_text(json.dumps({"format": 9}))
    with pytest.raises(ArtifactError, match="not a format-1 model store"):
        store.versions()
