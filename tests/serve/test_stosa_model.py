"""A STOSA model served: recommendations with the default explanation and attention, like SASRec's."""

from __future__ import annotations

import seqlens
from seqlens.serve import create_app

from .conftest import TINY, Server, contract_client


def test_a_stosa_model_serves_explained_recommendations(tmp_path, serve_log):
    seqlens.STOSA(**TINY).fit(serve_log).save(tmp_path / "model")
    server = Server(create_app(tmp_path / "model"))
    try:
        with contract_client(server.url) as client:
            items = sorted(serve_log.df["item_id"].unique())[:4]
            r = client.post("/v1/recommend", json={"items": items, "k": 5, "explain": True, "attention": True})
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["recommendations"]) == 5
            assert body["explanation"]["item_id"] == body["recommendations"][0]["item_id"]
            assert body["explanation"]["method"] == "masking"
            assert len(body["attention"]["weights"]) == TINY["layers"]
            assert client.get("/v1/model").json()["model"] == "STOSA"
    finally:
        server.stop()
