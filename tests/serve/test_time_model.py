"""A model that reads time, served: a stored user's times and a request's timestamps reach the model, and the
service answers as the library does."""

from __future__ import annotations

import numpy as np

import seqlens
from seqlens.explain import explain
from seqlens.serve import create_app

from .conftest import TINY, Server, contract_client


def test_a_time_model_serves_what_the_library_recommends(tmp_path, serve_log):
    model = seqlens.SASRec(**{**TINY, "time": "interval"}).fit(serve_log)
    model.save(tmp_path / "model")
    user = str(model.user_ids_[0])
    history = model.history_of(user)
    times = model.histories_.times[model.histories_.starts[0] : model.histories_.starts[0] + len(history)].tolist()
    spread = (np.arange(len(history)) * 10**6).tolist()  # other intervals: another answer from a time model
    answers = [
        model.recommend(histories={"x": history}, k=5, timestamps=t) for t in ({"x": times}, {"x": spread}, None)
    ]
    for a, b in ((0, 1), (0, 2), (1, 2)):  # the times change the scores, so the service must pass them on
        assert not np.allclose(answers[a]["score"], answers[b]["score"], rtol=1e-6)
    server = Server(create_app(tmp_path / "model"))
    try:
        with contract_client(server.url) as client:
            for body, expected in (
                ({"user_id": user}, model.recommend(users=[user], k=5)),
                ({"items": history, "timestamps": times}, model.recommend(histories={"x": history}, k=5,
                                                                           timestamps={"x": times})),
                ({"items": history, "timestamps": spread}, model.recommend(histories={"x": history}, k=5,
                                                                            timestamps={"x": spread})),
                ({"items": history}, model.recommend(histories={"x": history}, k=5)),  # times unknown
            ):  # fmt: skip
                r = client.post("/v1/recommend", json={**body, "k": 5, "explain": True, "method": "masking"})
                assert r.status_code == 200, r.text
                served = r.json()
                assert [x["item_id"] for x in served["recommendations"]] == expected["item_id"].tolist()
                np.testing.assert_allclose(
                    [x["score"] for x in served["recommendations"]], expected["score"], rtol=1e-4
                )
                assert served["explanation"]["item_id"] == expected["item_id"].iloc[0]
                times_given = body.get("timestamps", times if "user_id" in body else None)
                library = explain(model, history=history, item=expected["item_id"].iloc[0], method="masking",
                                  timestamps=times_given)  # fmt: skip
                np.testing.assert_allclose(  # the explanation read the same times as the recommendation
                    [a["score"] for a in served["explanation"]["attributions"]], library.scores, rtol=1e-4, atol=1e-5
                )
            r = client.post("/v1/recommend", json={"user_id": user, "timestamps": [1]})
            assert r.status_code == 422 and "timestamps must come with items" in r.text
            r = client.post("/v1/recommend", json={"items": history, "timestamps": times[:-1]})
            assert r.status_code == 422
    finally:
        server.stop()
