"""explain=true: the explanation is the library's (`seqlens.explain.explain`) for the top item, for every method."""

from __future__ import annotations

import numpy as np
import pytest

from seqlens.serve import create_app

from .conftest import Server, contract_client
from .test_api import assert_error

explain_package = pytest.importorskip("seqlens.explain", reason="seqlens.explain is not in this build")
HISTORY = ["i3", "i17", "i5", "i42", "i8", "i3"]


@pytest.mark.parametrize("method", explain_package.METHODS)
def test_explanation_equals_the_library_for_the_top_item(client, model, method):
    r = client.post("/v1/recommend", json={"items": HISTORY, "k": 4, "explain": True, "method": method})
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["recommendations"][0]["item_id"]
    exp = body["explanation"]
    expected = explain_package.explain(model, history=HISTORY, item=top, method=method)
    assert exp["item_id"] == top and exp["method"] == method
    assert exp["narrative"] == expected.narrative and exp["narrative"]
    assert [a["item_id"] for a in exp["attributions"]] == HISTORY
    assert [a["position"] for a in exp["attributions"]] == list(range(len(HISTORY)))
    np.testing.assert_allclose([a["score"] for a in exp["attributions"]], expected.scores, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([a["share"] for a in exp["attributions"]], expected.shares, rtol=1e-4, atol=1e-6)
    assert exp["target_agnostic"] == (method in explain_package.TARGET_AGNOSTIC)
    assert exp["signed"] == (method in explain_package.SIGNED)
    assert exp["score"] == pytest.approx(body["recommendations"][0]["score"], rel=1e-4, abs=1e-4)
    assert body["attention"]["items"] == HISTORY  # the heatmap comes with every explanation


def test_the_default_method_is_the_librarys(client):
    body = client.post("/v1/recommend", json={"items": HISTORY, "k": 2, "explain": True}).json()
    assert body["explanation"]["method"] == explain_package.DEFAULT_METHOD


def test_attention_explanation_is_the_mean_of_the_last_layer_heads(client):
    body = client.post("/v1/recommend", json={"items": HISTORY, "k": 2, "explain": True, "method": "attention"}).json()
    assert body["explanation"]["method"] == "attention"
    last_layer = np.array(body["attention"]["weights"][-1])  # [heads, T]
    np.testing.assert_allclose([a["score"] for a in body["explanation"]["attributions"]], last_layer.mean(0), atol=1e-4)


def test_explanations_cover_only_the_truncated_window(client, model):
    items = [str(i) for i in model.item_ids_[:35]]
    body = client.post("/v1/recommend", json={"items": items, "k": 2, "explain": True}).json()
    assert body["truncated"] is True
    assert [a["item_id"] for a in body["explanation"]["attributions"]] == items[-model.max_len :]


def test_unknown_method_is_422_listing_the_methods(client):
    r = client.post("/v1/recommend", json={"items": HISTORY, "explain": True, "method": "tea-leaves"})
    body = assert_error(r, 422, "method 'tea-leaves' is unknown; choose one of")
    assert all(m in body["error"] for m in explain_package.METHODS)
    info = client.get("/v1/model").json()
    assert info["explain_methods"] == list(explain_package.METHODS)
    assert info["default_explain_method"] == explain_package.DEFAULT_METHOD  # what the web page preselects


@pytest.fixture(scope="module")
def popular_client(popular_dir):
    server = Server(create_app(popular_dir))
    with contract_client(server.url) as c:
        yield c
    server.stop()


def test_a_model_without_attention_recommends_but_cannot_explain(popular_client, popular_dir):
    import seqlens

    model = seqlens.load(popular_dir)
    ok = popular_client.post("/v1/recommend", json={"items": HISTORY, "k": 5, "attention": True})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert [x["item_id"] for x in body["recommendations"]] == model.recommend(histories={"x": HISTORY}, k=5)[
        "item_id"
    ].tolist()
    assert "attention" not in body and any("has no attention weights" in n for n in body["notes"])
    r = popular_client.post("/v1/recommend", json={"items": HISTORY, "explain": True})
    assert_error(r, 422, "the served model (Popular) has no attention network to explain")
    info = popular_client.get("/v1/model").json()
    assert info["attention"] is False and info["explain_methods"] == []


def test_attention_from_the_recommend_pass_equals_the_librarys_explanation(client, model):
    """The service reads `attention` from the weights its recommend pass computed; the answer is the library's."""
    body = {"items": HISTORY, "k": 3, "explain": True, "method": "attention"}
    served = client.post("/v1/recommend", json=body).json()["explanation"]
    library = explain_package.explain(model, history=HISTORY, method="attention")
    assert served["item_id"] == library.recommended and served["narrative"] == library.narrative
    np.testing.assert_allclose([a["score"] for a in served["attributions"]], library.scores, atol=1e-5)
