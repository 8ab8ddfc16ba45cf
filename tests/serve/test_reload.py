"""Hot reload: off without a token, constant-time token check, atomic swap, failures keep the old model."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import seqlens
from seqlens.serve import create_app

from .conftest import TINY, TOKEN, Server, contract_client
from .test_api import assert_error

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HISTORY = ["i3", "i17", "i5"]


@pytest.fixture
def reloadable(tmp_path, model_dir):
    """A server with a reload token over its own copy of the model directory."""
    path = tmp_path / "model"
    shutil.copytree(model_dir, path)
    server = Server(create_app(path, reload_token=TOKEN))
    with contract_client(server.url) as c:
        yield c, path
    server.stop()


@pytest.fixture(scope="module")
def other_model(serve_log):
    """A different model (other size and seed) to swap in."""
    return seqlens.SASRec(**{**TINY, "dim": 8, "seed": 5, "epochs": 1}).fit(serve_log)


def top_items(client) -> list[str]:
    r = client.post("/v1/recommend", json={"items": HISTORY, "k": 10})
    assert r.status_code == 200, r.text
    return [x["item_id"] for x in r.json()["recommendations"]]


def test_reload_is_disabled_without_a_token(client):
    assert_error(client.post("/v1/admin/reload"), 403, "are disabled")
    assert_error(client.post("/v1/admin/reload", headers=AUTH), 403, "are disabled")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN}x"},
     {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer tést".encode("latin-1")}],
)  # fmt: skip
def test_reload_refuses_a_missing_or_wrong_token(reloadable, headers):
    client, _ = reloadable
    assert_error(client.post("/v1/admin/reload", headers=headers), 401, "missing or wrong token")


@pytest.mark.fault
def test_reload_swaps_in_the_new_model(reloadable, other_model):
    client, path = reloadable
    old_hash = client.get("/v1/model").json()["config_hash"]
    other_model.save(path)
    r = client.post("/v1/admin/reload", headers={"Authorization": f"bearer {TOKEN}"})  # the scheme is case-insensitive
    assert r.status_code == 200, r.text
    info = client.get("/v1/model").json()
    assert info["config_hash"] != old_hash and info["params"]["dim"] == 8
    assert r.json()["model"]["config_hash"] == info["config_hash"]
    assert top_items(client) == other_model.recommend(histories={"x": HISTORY}, k=10)["item_id"].tolist()
    assert 'seqlens_model_reloads_total{outcome="ok"} 1.0' in client.get("/metrics").text


def test_requests_during_a_reload_all_succeed_on_one_model_or_the_other(reloadable, other_model, model):
    client, path = reloadable
    old = model.recommend(histories={"x": HISTORY}, k=10)["item_id"].tolist()
    new = other_model.recommend(histories={"x": HISTORY}, k=10)["item_id"].tolist()
    assert old != new
    other_model.save(path)
    with ThreadPoolExecutor(4) as pool:
        before = [pool.submit(top_items, client) for _ in range(40)]
        reload = pool.submit(client.post, "/v1/admin/reload", headers=AUTH)
        after = [pool.submit(top_items, client) for _ in range(40)]
        answers = [f.result() for f in before + after]
        assert reload.result().status_code == 200
    assert all(a in (old, new) for a in answers)  # never a mix, never an error
    assert top_items(client) == new


def test_a_failed_reload_keeps_serving_the_previous_model(reloadable):
    client, path = reloadable
    before = client.get("/v1/model").json()["config_hash"]
    expected = top_items(client)
    (path / "config.json").write_text("{ not json")
    r = client.post("/v1/admin/reload", headers=AUTH)
    assert_error(r, 409, "reload failed, still serving the previous model")
    assert "config.json" in r.json()["error"]
    assert client.get("/v1/model").json()["config_hash"] == before
    assert top_items(client) == expected
    shutil.rmtree(path)
    assert_error(client.post("/v1/admin/reload", headers=AUTH), 409, "not a model directory")
    assert top_items(client) == expected


@pytest.mark.fault
def test_a_reload_of_a_model_with_nan_weights_is_refused(reloadable, model):
    client, path = reloadable
    expected = top_items(client)
    broken = seqlens.load(path)
    with torch.no_grad():
        next(broken.net_.parameters()).fill_(float("nan"))
    broken.save(path)
    r = client.post("/v1/admin/reload", headers=AUTH)
    assert_error(r, 409, "weights are not finite")
    assert top_items(client) == expected  # the old model keeps serving
    assert 'seqlens_model_reloads_total{outcome="failed"}' in client.get("/metrics").text
