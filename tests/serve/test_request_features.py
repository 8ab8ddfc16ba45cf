"""Models that read user attributes or the request's context, served: a stored user's attributes, a request's
`user_attributes` and `context` reach the model, the explanation scores the item as the recommendation does, and
the service answers as the library."""

from __future__ import annotations

import numpy as np
import pandas as pd

import seqlens
from seqlens.serve import create_app

from .conftest import TINY, Server, contract_client


def served_as_library(client, body: dict, expected: pd.DataFrame) -> None:
    """The service answers `body` with `expected` (the library's answer), and explains its top item with the score
    it recommends it with."""
    r = client.post("/v1/recommend", json={**body, "k": 5, "explain": True, "method": "masking"})
    assert r.status_code == 200, r.text
    served = r.json()
    assert [x["item_id"] for x in served["recommendations"]] == expected["item_id"].tolist()
    scores = [x["score"] for x in served["recommendations"]]
    np.testing.assert_allclose(scores, expected["score"], rtol=1e-4)
    assert served["explanation"]["item_id"] == expected["item_id"].iloc[0]
    np.testing.assert_allclose(served["explanation"]["score"], scores[0], rtol=1e-4)


def test_a_user_model_serves_what_the_library_recommends(tmp_path, serve_log):
    users = serve_log.df["user_id"].unique()
    table = pd.DataFrame({"user_id": users, "segment": [f"s{i % 3}" for i in range(len(users))]})
    log = serve_log.with_users(seqlens.read_users(table, categorical=["segment"]))
    model = seqlens.SASRec(**{**TINY, "user_features": ["segment"]}).fit(log)
    model.save(tmp_path / "model")
    user = str(model.user_ids_[0])
    history = model.history_of(user)
    given = {"segment": "s2"}  # not the stored user's (s0): another answer
    answers = [model.recommend(histories={"x": history}, k=5, user_attributes=a) for a in (None, {"x": given})]
    assert not np.allclose(model.recommend(users=[user], k=5)["score"], answers[0]["score"], rtol=1e-6)
    assert not np.allclose(answers[0]["score"], answers[1]["score"], rtol=1e-6)
    server = Server(create_app(tmp_path / "model"))
    try:
        with contract_client(server.url) as client:
            for body, expected in (
                ({"user_id": user}, model.recommend(users=[user], k=5)),
                ({"items": history, "user_attributes": given},
                 model.recommend(histories={"x": history}, k=5, user_attributes={"x": given})),
                ({"items": history}, model.recommend(histories={"x": history}, k=5)),  # attributes unknown
            ):  # fmt: skip
                served_as_library(client, body, expected)
            r = client.post("/v1/recommend", json={"items": history, "user_attributes": {"segment": "s9"}})
            assert r.status_code == 200 and any("segment='s9'" in n for n in r.json()["notes"])
            r = client.post("/v1/recommend", json={"items": history, "user_attributes": {"job": "x"}})
            assert r.status_code == 422 and "no user feature 'job'" in r.text
            r = client.post("/v1/recommend", json={"user_id": user, "user_attributes": given})
            assert r.status_code == 422 and "must come with items" in r.text
    finally:
        server.stop()


def test_a_context_model_serves_what_the_library_recommends(tmp_path, serve_log):
    devices = np.where(np.arange(len(serve_log)) % 3 == 0, "mobile", "desktop")
    log = seqlens.read_interactions(serve_log.df.assign(device=devices), context=["device"])
    model = seqlens.SASRec(**{**TINY, "context": ["device"]}).fit(log)
    model.save(tmp_path / "model")
    user = str(model.user_ids_[0])
    history = model.history_of(user)
    mobile = {"device": "mobile"}
    answers = [model.recommend(users=[user], k=5, context=c) for c in (None, {user: mobile})]
    assert not np.allclose(answers[0]["score"], answers[1]["score"], rtol=1e-6)  # the context changes the answer
    server = Server(create_app(tmp_path / "model"))
    try:
        with contract_client(server.url) as client:
            for body, expected in (
                ({"user_id": user}, answers[0]),
                ({"user_id": user, "context": mobile}, answers[1]),
                ({"items": history, "context": mobile},
                 model.recommend(histories={"x": history}, k=5, context={"x": mobile})),
            ):  # fmt: skip
                served_as_library(client, body, expected)
            r = client.post("/v1/recommend", json={"user_id": user, "context": {"device": "tablet"}})
            assert r.status_code == 200 and any("device='tablet'" in n for n in r.json()["notes"])
            r = client.post("/v1/recommend", json={"user_id": user, "context": {"channel": "x"}})
            assert r.status_code == 422 and "no context column 'channel'" in r.text
    finally:
        server.stop()
