"""Serving a model store: the version in answers and metrics, rollback over HTTP, reload after a promotion."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from seqlens.recommenders import ModelStore
from seqlens.serve import create_app

from .conftest import TOKEN, Server, contract_client
from .test_api import assert_error
from .test_reload import AUTH, HISTORY, other_model  # noqa: F401 (a fixture)


@pytest.fixture
def stored(tmp_path, model_dir, other_model):  # noqa: F811
    """A store holding the shared model (v1) and another one (v2, promoted after v1), served with a token."""
    other_model.save(tmp_path / "other")
    store = ModelStore(tmp_path / "store", create=True)
    store.add(model_dir, promote=True)
    store.add(tmp_path / "other", promote=True)
    server = Server(create_app(store.root, reload_token=TOKEN))
    with contract_client(server.url) as c:
        yield c, store
    server.stop()


def answer(client) -> tuple[str, list[str]]:
    r = client.post("/v1/recommend", json={"items": HISTORY, "k": 10})
    assert r.status_code == 200, r.text
    return r.json()["model_version"], [x["item_id"] for x in r.json()["recommendations"]]


def test_answers_and_metrics_name_the_promoted_version(stored, other_model):  # noqa: F811
    client, _ = stored
    version, items = answer(client)
    assert version == "2" and items == other_model.recommend(histories={"x": HISTORY}, k=10)["item_id"].tolist()
    assert client.get("/v1/model").json()["model_version"] == "2"
    assert client.get("/healthz").json()["model_version"] == "2"
    metrics = client.get("/metrics").text
    assert "seqlens_model_version 2.0" in metrics
    assert 'model_version="2"' in metrics


@pytest.mark.fault
def test_rollback_serves_the_previous_version_without_a_restart(stored, model):
    client, store = stored
    r = client.post("/v1/admin/rollback", headers=AUTH)
    assert r.status_code == 200, r.text
    assert (r.json()["from"], r.json()["to"]) == (2, 1)
    assert answer(client) == ("1", model.recommend(histories={"x": HISTORY}, k=10)["item_id"].tolist())
    assert store.promoted() == 1
    assert "seqlens_model_version 1.0" in client.get("/metrics").text
    assert_error(client.post("/v1/admin/rollback", headers=AUTH), 409, "nothing to roll back to")
    assert answer(client)[0] == "1"


def test_requests_during_a_rollback_all_succeed_on_one_version_or_the_other(stored, model, other_model):  # noqa: F811
    client, _ = stored
    expected = {
        "1": model.recommend(histories={"x": HISTORY}, k=10)["item_id"].tolist(),
        "2": other_model.recommend(histories={"x": HISTORY}, k=10)["item_id"].tolist(),
    }
    with ThreadPoolExecutor(4) as pool:
        before = [pool.submit(answer, client) for _ in range(40)]
        rollback = pool.submit(client.post, "/v1/admin/rollback", headers=AUTH)
        after = [pool.submit(answer, client) for _ in range(40)]
        answers = [f.result() for f in before + after]  # answer() asserts every one is a 200
        assert rollback.result().status_code == 200
    assert all(items == expected[version] for version, items in answers)
    assert answer(client)[0] == "1"


@pytest.mark.fault
def test_a_broken_previous_version_is_not_rolled_back_to(stored):
    client, store = stored
    (store.path(1) / "config.json").write_text("{ not json")
    r = client.post("/v1/admin/rollback", headers=AUTH)
    assert_error(r, 409, "rollback to version 1 failed, still serving the previous model")
    assert (store.promoted(), answer(client)[0]) == (2, "2")
    (store.root / "store.json").write_text("{ not json")
    assert_error(client.post("/v1/admin/rollback", headers=AUTH), 409, "rollback failed, still serving version 2")


def test_reload_serves_a_newly_promoted_version(stored, model):
    client, store = stored
    store.promote(1)
    assert answer(client)[0] == "2"  # until told to reload
    assert client.post("/v1/admin/reload", headers=AUTH).status_code == 200
    assert answer(client) == ("1", model.recommend(histories={"x": HISTORY}, k=10)["item_id"].tolist())


def test_rollback_needs_a_token_and_a_store(stored, tmp_path, model_dir):
    client, store = stored
    assert_error(client.post("/v1/admin/rollback"), 401, "missing or wrong token")
    assert store.promoted() == 2
    path = tmp_path / "plain"
    shutil.copytree(model_dir, path)
    server = Server(create_app(path, reload_token=TOKEN))
    try:
        with contract_client(server.url) as plain:
            assert_error(plain.post("/v1/admin/rollback", headers=AUTH), 409, "needs a model store")
            assert plain.get("/healthz").json()["model_version"] == plain.get("/v1/model").json()["config_hash"]
    finally:
        server.stop()


def test_a_store_with_nothing_promoted_is_refused_at_start(tmp_path, model_dir):
    store = ModelStore(tmp_path / "store", create=True)
    store.add(model_dir)
    with pytest.raises(Exception, match="no version is promoted yet"):
        create_app(store.root)
