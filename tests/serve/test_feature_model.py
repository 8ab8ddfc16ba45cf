"""A feature model served: cold items (in the attribute table, never in training) can be recommended over HTTP."""

from __future__ import annotations

import pandas as pd

import seqlens
from seqlens.serve import create_app

from .conftest import TINY, Server, contract_client


def test_a_feature_model_serves_and_ranks_cold_items(tmp_path, serve_log):
    known = sorted(serve_log.df["item_id"].unique())
    cold = [f"new{k}" for k in range(5)]
    table = pd.DataFrame({"item_id": known + cold, "shelf": [f"s{k % 4}" for k in range(len(known) + len(cold))]})
    log = serve_log.with_items(seqlens.read_items(table, categorical=["shelf"]))
    seqlens.SASRec(**{**TINY, "features": ["shelf"]}).fit(log).save(tmp_path / "model")
    server = Server(create_app(tmp_path / "model"))
    try:
        with contract_client(server.url) as client:
            r = client.post("/v1/recommend", json={"items": known[:3], "k": len(known) + len(cold) - 3})
            assert r.status_code == 200, r.text
            ranked = [x["item_id"] for x in r.json()["recommendations"]]
            assert set(cold) <= set(ranked)  # cold items are in the served catalogue, with finite scores
            assert client.get("/v1/model").json()["params"]["features"] == ["shelf"]
    finally:
        server.stop()
