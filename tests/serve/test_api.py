"""The HTTP API against a real uvicorn server: answers match the library, and bad input is a clear 4xx."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from seqlens.serve.schemas import MAX_BODY_BYTES, MAX_ITEMS


def recommend(client, **body):
    return client.post("/v1/recommend", json=body)


def assert_error(response, status: int, text: str) -> dict:
    """A JSON error with this status whose message contains `text`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert text in body["error"], body["error"]
    return body


# --- answers ---------------------------------------------------------------------------------------
def test_recommend_for_a_known_user_matches_the_library(client, model):
    user = str(model.user_ids_[3])
    r = recommend(client, user_id=user, k=7)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = model.recommend(users=[user], k=7)
    assert [x["item_id"] for x in body["recommendations"]] == expected["item_id"].tolist()
    np.testing.assert_allclose([x["score"] for x in body["recommendations"]], expected["score"], rtol=1e-5, atol=1e-5)
    assert [x["rank"] for x in body["recommendations"]] == list(range(1, 8))
    assert all(x["title"] == model.item_titles_[x["item_id"]] for x in body["recommendations"])
    assert body["user_id"] == user
    assert body["history_length"] == len(model.history_of(user))


def test_recommend_for_an_adhoc_history_matches_the_library(client, model):
    items = ["i3", "i17", "i5", "i42"]
    body = recommend(client, items=items, k=5).json()
    expected = model.recommend(histories={"x": items}, k=5)
    assert [x["item_id"] for x in body["recommendations"]] == expected["item_id"].tolist()
    assert not set(items) & {x["item_id"] for x in body["recommendations"]}  # seen items excluded
    assert body["history_length"] == 4 and body["used_length"] == 4 and body["truncated"] is False


def test_integer_item_ids_are_read_as_strings(client, model):
    # MovieLens-style numeric ids arrive as JSON numbers; here an unknown numeric id is reported as a string
    body = recommend(client, items=["i3", 12345], k=3).json()
    assert body["unknown_items"] == ["12345"]


def test_exclude_seen_false_can_return_history_items(client, model):
    items = [str(i) for i in model.item_ids_[:15]]
    kept = recommend(client, items=items, k=len(model.item_ids_), exclude_seen=False).json()
    dropped = recommend(client, items=items, k=len(model.item_ids_)).json()
    assert len(kept["recommendations"]) == len(model.item_ids_)
    assert set(items) <= {x["item_id"] for x in kept["recommendations"]}
    assert len(dropped["recommendations"]) == len(model.item_ids_) - 15
    assert not set(items) & {x["item_id"] for x in dropped["recommendations"]}


def test_unknown_items_are_reported_and_ignored(client, model):
    body = recommend(client, items=["i3", "nope-1", "i17", "nope-2"], k=5).json()
    assert body["unknown_items"] == ["nope-1", "nope-2"]
    assert any("ignored 2 item ids unknown" in n for n in body["notes"])
    same = recommend(client, items=["i3", "i17"], k=5).json()
    assert body["recommendations"] == same["recommendations"]
    assert body["history_length"] == 2


def test_long_histories_are_truncated_to_the_most_recent_items_and_say_so(client, model):
    ids = [str(i) for i in model.item_ids_]
    items = (ids * 2)[:35]  # max_len is 20
    body = recommend(client, items=items, k=5, exclude_seen=False, attention=True).json()
    assert body["truncated"] is True
    assert body["history_length"] == 35 and body["used_length"] == 20
    assert any("most recent 20" in n for n in body["notes"])
    expected = model.recommend(histories={"x": items[-20:]}, k=5, exclude_seen=False)
    assert [x["item_id"] for x in body["recommendations"]] == expected["item_id"].tolist()
    assert body["attention"]["items"] == items[-20:]


def test_attention_map_has_one_row_per_layer_and_head_summing_to_one(client, model):
    items = ["i3", "i17", "i5", "i42", "i8"]
    body = recommend(client, items=items, k=3, attention=True).json()
    att = body["attention"]
    assert att["items"] == items
    assert len(att["weights"]) == model.layers and all(len(layer) == model.heads for layer in att["weights"])
    for layer in att["weights"]:
        for head in layer:
            assert len(head) == len(items)
            assert math.isclose(sum(head), 1.0, abs_tol=1e-3) and min(head) >= 0
    assert "attention" not in recommend(client, items=items, k=3).json()


def test_user_histories_longer_than_max_len_are_truncated_too(client, model):
    user = next(str(u) for u in model.user_ids_ if len(model.history_of(u)) > model.max_len)
    body = recommend(client, user_id=user, k=3).json()
    assert body["truncated"] is True and body["used_length"] == model.max_len
    assert body["history_length"] == len(model.history_of(user))


# --- bad input: every case names the problem --------------------------------------------------------
@pytest.mark.parametrize(
    "body, status, text",
    [
        ({"items": []}, 422, "items is empty"),
        ({"k": 5}, 422, "give exactly one of user_id"),
        ({"user_id": "u1", "items": ["i3"]}, 422, "give exactly one of user_id"),
        ({"user_id": "no-such-user"}, 404, "user_id 'no-such-user' was not seen in training"),
        ({"items": ["zz1", "zz2"]}, 422, "none of the 2 items is known to the model"),
        ({"items": ["i3"], "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"items": ["i3"], "k": 1001}, 422, "k: Input should be less than or equal to 1000"),
        ({"items": ["i3"], "k": -5}, 422, "k: Input should be greater than or equal to 1"),
        ({"items": ["i3"], "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({"items": ["i3"], "k": True}, 422, "k: Input should be a valid integer"),
        ({"items": ["i3"], "k": 2.5}, 422, "k: Input should be a valid integer"),
        ({"items": "i3,i4"}, 422, "items: Input should be a valid list"),
        ({"items": ["i3", {"id": 1}]}, 422, "items.1"),
        ({"items": ["i3"], "exclude_seen": "no"}, 422, "exclude_seen: Input should be a valid boolean"),
        ({"items": ["i3"], "explain": 1}, 422, "explain: Input should be a valid boolean"),
        ({"items": ["i3"], "colour": "red"}, 422, "colour: unknown field"),
        ({"user_id": ""}, 422, "user_id: String should have at least 1 character"),
        ({"items": ["i3"], "method": "attention"}, 422, "method is set but explain is false"),
    ],
)
def test_bad_recommend_bodies_are_4xx_naming_the_problem(client, body, status, text):
    assert_error(client.post("/v1/recommend", json=body), status, text)


@pytest.mark.parametrize("body, field", [({"items": ["\ud800", "i3"]}, "items.0"), ({"user_id": "\udfff"}, "user_id")])
@pytest.mark.fault
def test_lone_surrogates_are_refused_not_a_500(client, body, field):
    """JSON may carry "\\ud800"; echoed back in the answer it could not be encoded (it was a 500)."""
    r = client.post("/v1/recommend", content=json.dumps(body), headers={"content-type": "application/json"})
    assert_error(r, 422, field)


def test_more_than_the_item_limit_is_refused(client):
    items = [f"i{j % 60}" for j in range(MAX_ITEMS + 1)]
    body = assert_error(recommend(client, items=items), 422, f"items: List should have at most {MAX_ITEMS} items")
    assert len(body["error"]) < 500  # the message names the problem, it does not echo the input
    ok = recommend(client, items=items[:MAX_ITEMS], k=3)
    assert ok.status_code == 200 and ok.json()["truncated"] is True


def test_oversized_body_is_refused_before_parsing(client):
    payload = json.dumps({"items": ["x" * 200] * 6000}).encode()
    assert len(payload) > MAX_BODY_BYTES
    r = client.post("/v1/recommend", content=payload, headers={"content-type": "application/json"})
    assert_error(r, 413, f"the limit is {MAX_BODY_BYTES} bytes")


def test_oversized_chunked_body_without_length_is_refused(client):
    def chunks():
        yield b'{"items": ['
        for _ in range(3000):
            yield b'"' + b"y" * 500 + b'",'
        yield b'"i3"]}'

    r = client.post("/v1/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, f"the limit is {MAX_BODY_BYTES} bytes")


@pytest.mark.parametrize(
    "content, text",
    [
        (b'{"items": ["i3",', "the body is not valid JSON"),
        (b"", "the body is missing"),
        (b'["i3", "i4"]', "the body must be a JSON object"),
        (b'"i3"', "the body must be a JSON object"),
    ],
)
def test_malformed_bodies_are_422(client, content, text):
    r = client.post("/v1/recommend", content=content, headers={"content-type": "application/json"})
    assert_error(r, 422, text)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_labelled_as_json_is_415(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/v1/recommend", content=b'{"items": ["i3"], "k": 2}', headers=headers)
    assert_error(r, 415, "send the body as JSON with Content-Type: application/json")


def test_explain_without_the_explain_package_or_with_a_bad_method(client):
    try:
        import seqlens.explain  # noqa: F401
    except ImportError:
        assert_error(recommend(client, items=["i3"], explain=True), 501, "explanations are not available")
    else:
        r = recommend(client, items=["i3"], explain=True, method="tea-leaves")
        assert_error(r, 422, "method 'tea-leaves' is unknown; choose one of")


def test_wrong_methods_and_unknown_paths_are_json_errors(client):
    assert_error(client.get("/v1/recommend"), 405, "Method Not Allowed")
    assert_error(client.get("/v2/nothing"), 404, "Not Found")


# --- items, model, health ----------------------------------------------------------------------------
def test_item_lookup(client, model):
    body = client.get("/v1/items/i7").json()
    assert body["item_id"] == "i7" and body["title"] == model.item_titles_["i7"]
    assert body["interactions"] == sum(h.count("i7") for h in map(model.history_of, model.user_ids_))
    assert_error(client.get("/v1/items/nope"), 404, "item 'nope' is not known to the model")


def test_item_search_by_title_ranks_popular_items_first(client, model):
    items = client.get("/v1/items", params={"q": "GENRE b", "limit": 100}).json()["items"]
    assert items and all("(genre B)" in i["title"] for i in items)
    expected = {i for i, t in model.item_titles_.items() if "(genre B)" in t}
    assert {i["item_id"] for i in items} == expected
    counts = [client.get(f"/v1/items/{i['item_id']}").json()["interactions"] for i in items]
    assert counts == sorted(counts, reverse=True) == [i["interactions"] for i in items]
    assert len(client.get("/v1/items", params={"q": "item", "limit": 4}).json()["items"]) == 4
    assert client.get("/v1/items", params={"q": "i42"}).json()["items"][0]["item_id"] == "i42"


@pytest.mark.parametrize(
    "params, text",
    [({"limit": 0}, "limit: Input should be greater than or equal to 1"),
     ({"limit": 101}, "limit: Input should be less than or equal to 100"),
     ({"limit": "many"}, "limit: Input should be a valid integer"),
     ({"q": "x" * 201}, "q: String should have at most 200 characters")],
)  # fmt: skip
def test_bad_item_search_is_422(client, params, text):
    assert_error(client.get("/v1/items", params=params), 422, text)


@pytest.mark.fault
def test_model_info_and_health(client, model_dir, model):
    config = json.loads((model_dir / "config.json").read_text())
    info = client.get("/v1/model").json()
    assert info["config_hash"] == config["config_hash"] and info["trained_at"] == config["created"]
    assert info["model"] == "SASRec" and info["max_len"] == 20 and info["n_items"] == model.n_items_
    assert info["seqlens_version"] == config["seqlens_version"] and info["attention"] is True
    assert client.get("/healthz").json() == {
        "status": "ok", "model": "SASRec", "model_version": config["config_hash"], "config_hash": config["config_hash"]
    }  # fmt: skip
    assert "/" not in json.dumps([info["path"], info["dataset"]])  # no server paths shown to clients


# --- metrics -------------------------------------------------------------------------------------------
def _sample(text: str, name: str, **labels) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    for line in text.splitlines():
        m = re.match(rf"{re.escape(name)}(\{{.*\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            return float(m.group(2))
    return 0.0


def test_metrics_count_requests_latency_and_attention_per_layer(client, model):
    before = client.get("/metrics").text
    for _ in range(3):
        assert recommend(client, items=["i3", "i4"], k=2).status_code == 200
    assert recommend(client, items=[], k=2).status_code == 422
    after = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")

    def delta(name, **labels):
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert delta("seqlens_http_requests_total", endpoint="/v1/recommend", method="POST", status="200") == 3
    assert delta("seqlens_http_requests_total", endpoint="/v1/recommend", method="POST", status="422") == 1
    assert delta("seqlens_http_request_duration_seconds_count", endpoint="/v1/recommend") == 4
    for layer in range(model.layers):
        assert delta("seqlens_attention_entropy_nats_count", layer=str(layer)) == 3
        assert delta("seqlens_attention_last_item_mass_count", layer=str(layer)) == 3
        # two history items: entropy is at most log 2, mass at most 1
        assert delta("seqlens_attention_entropy_nats_bucket", layer=str(layer), le="0.75") == 3
    assert f'layer="{model.layers}"' not in after


def test_metrics_label_unknown_paths_as_other(client):
    client.get("/wp-admin/x1")
    client.get("/wp-admin/x2")
    text = client.get("/metrics").text
    assert "wp-admin" not in text
    assert _sample(text, "seqlens_http_requests_total", endpoint="other", status="404") >= 2
    before = _sample(text, "seqlens_http_requests_total", endpoint="/static", status="200")
    client.get("/static/app.js")
    after = _sample(client.get("/metrics").text, "seqlens_http_requests_total", endpoint="/static", status="200")
    assert after == before + 1


def test_the_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="heatmap"' in page.text
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # nothing from a CDN
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "http://" not in r.text and "https://" not in r.text


@pytest.mark.fault
def test_api_docs_work_offline(client):
    """/docs loads Swagger UI from the service itself, not from a CDN."""
    page = client.get("/docs").text
    assert "/openapi.json" in page and "https://" not in page
    for asset in re.findall(r"(?:src|href)=['\"](/docs-assets/[^'\"]+)", page):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").json()["info"]["title"] == "seqlens"


@pytest.mark.fault
def test_readiness_is_its_own_endpoint(client, model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    ready = {"ready": True, "model_version": config["config_hash"], "config_hash": config["config_hash"]}
    assert client.get("/readyz").json() == ready


@pytest.mark.fault
def test_every_answer_carries_a_request_id(client):
    mine = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42"  # a client's id is kept, to follow it across services
    fresh = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert fresh != "bad id with spaces" and len(fresh) == 16
    assert client.get("/healthz").headers["x-request-id"] != fresh


@pytest.mark.fault
def test_log_lines_are_json_with_the_request_id():
    import logging

    from seqlens.serve.app import JsonLines

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("seqlens.serve", logging.ERROR, __file__, 1, "failed on %s", ("/x",), sys.exc_info())
    record.request_id = "abc"
    line = JsonLines().format(record)
    entry = json.loads(line)
    assert "\n" not in line and entry["message"] == "failed on /x" and entry["request_id"] == "abc"
    assert "RuntimeError: boom" in entry["traceback"]


@pytest.mark.fault
def test_past_the_in_flight_limit_requests_are_shed_with_retry_after_and_probes_still_answer(model_dir):
    """A stalled upload holds the only slot: the next request gets 503 + Retry-After at once, /healthz 200."""
    import socket
    import time

    import httpx

    from seqlens.serve.app import create_app
    from tests.serve.conftest import Server

    server = Server(create_app(model_dir, max_in_flight=1))
    stalled = socket.create_connection(("127.0.0.1", server.port))
    try:
        stalled.sendall(b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 100\r\n\r\n{\"user_id\"")  # fmt: skip
        with httpx.Client(base_url=server.url, timeout=10) as client:
            deadline = time.monotonic() + 10
            while (answer := client.get("/v1/model")).status_code != 503 and time.monotonic() < deadline:
                time.sleep(0.05)  # until the stalled request has reached the app
            assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
            assert "busy" in answer.json()["error"]
            assert client.get("/healthz").status_code == 200
            stalled.close()
            deadline = time.monotonic() + 10
            while (answer := client.get("/v1/model")).status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert answer.status_code == 200
    finally:
        stalled.close()
        server.stop()
