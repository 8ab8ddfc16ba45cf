"""Micro-batching: concurrent requests share a forward pass and get exactly their own answers."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import torch

from seqlens.serve import create_app
from seqlens.serve.batching import MicroBatcher
from seqlens.serve.engine import Engine


def run(coro):
    return asyncio.run(coro)


def test_items_ready_together_run_as_one_batch_in_order():
    calls = []

    def double(key, items):
        calls.append((key, list(items)))
        return [2 * i for i in items]

    batcher = MicroBatcher(double)

    async def main():
        return await asyncio.gather(*(batcher.submit("k", i) for i in range(10)))

    assert run(main()) == [2 * i for i in range(10)]
    assert calls == [("k", list(range(10)))]


def test_keys_are_batched_apart_and_large_batches_split():
    calls = []
    batcher = MicroBatcher(lambda key, items: calls.append((key, len(items))) or [key] * len(items), max_batch=4)

    async def main():
        return await asyncio.gather(*(batcher.submit(i % 2, i) for i in range(10)))

    assert run(main()) == [i % 2 for i in range(10)]
    assert sorted(calls) == [(0, 1), (0, 4), (1, 1), (1, 4)]
    assert batcher.largest == 4


def test_a_failing_item_fails_only_its_own_request():
    def run_batch(key, items):
        if "bad" in items:
            raise ValueError("bad item")
        return [i.upper() for i in items]

    batcher = MicroBatcher(run_batch)

    async def main():
        return await asyncio.gather(*(batcher.submit(0, i) for i in ["a", "bad", "c"]), return_exceptions=True)

    a, bad, c = run(main())
    assert (a, c) == ("A", "C")
    assert isinstance(bad, ValueError) and str(bad) == "bad item"


def test_a_lone_request_is_not_delayed():
    # no timer: the batch runs within the next event-loop turns, whatever the clock says
    batcher = MicroBatcher(lambda key, items: items)

    async def main():
        task = asyncio.ensure_future(batcher.submit(0, 1))
        for _ in range(3):  # submit, flush, wake-up: one turn each
            await asyncio.sleep(0)
        return task.done() and task.result()

    assert run(main()) == 1
    assert batcher.batches == 1


def test_padded_batches_equal_one_history_at_a_time(model_dir, model):
    engine = Engine.load(model_dir)
    ids = [str(i) for i in model.item_ids_]
    histories = [ids[:1], ids[3:9], ids[10:40], ids[5:7]]  # lengths 1, 6, 30 (> max_len 20), 2
    queries = [engine.resolve(None, h) for h in histories]
    together, stats = engine.recommend_many(queries, [5, 3, 7, 5], [True, False, True, True], attention=True)
    assert stats.entropy.shape == (4, model.layers)
    for q, k, ex, got in zip(queries, [5, 3, 7, 5], [True, False, True, True], together):
        alone = engine.recommend(q, k, ex, attention=True)
        assert got.items.tolist() == alone.items.tolist()
        np.testing.assert_allclose(got.scores, alone.scores, rtol=1e-5, atol=1e-5)
        assert got.used.tolist() == alone.used.tolist()
        for w_batch, w_alone in zip(got.attentions, alone.attentions):
            assert w_batch.shape == w_alone.shape == (model.heads, len(alone.used))
            torch.testing.assert_close(w_batch, w_alone, rtol=1e-4, atol=1e-5)


def test_concurrent_http_requests_are_batched_and_answered_correctly(model_dir, model):
    app = create_app(model_dir)
    ids = [str(i) for i in model.item_ids_]
    # explained with attention (from the recommend pass), with rollout (batched explain), or not at all
    kinds = [{"explain": True}, {"explain": True, "method": "rollout"}, {}]
    bodies = [{"items": ids[j : j + 3 + j % 5], "k": 4, **kinds[j % 3]} for j in range(12)]

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            together = await asyncio.gather(*(client.post("/v1/recommend", json=b) for b in bodies))
            alone = [await client.post("/v1/recommend", json=b) for b in bodies]
        return together, alone

    together, alone = run(main())
    assert app.state.batchers["recommend"].largest > 1
    assert app.state.batchers["explain"].largest > 1
    for t, a in zip(together, alone):
        assert t.status_code == a.status_code == 200
        tj, aj = t.json(), a.json()
        assert [x["item_id"] for x in tj["recommendations"]] == [x["item_id"] for x in aj["recommendations"]]
        if "explanation" in aj:
            assert tj["explanation"]["narrative"] == aj["explanation"]["narrative"]
            np.testing.assert_allclose(
                [x["score"] for x in tj["explanation"]["attributions"]],
                [x["score"] for x in aj["explanation"]["attributions"]], rtol=1e-4, atol=1e-5,
            )  # fmt: skip
        else:
            assert "explanation" not in tj


@pytest.mark.parametrize("bad_first", [True, False])
def test_a_bad_request_in_a_concurrent_burst_does_not_fail_the_others(model_dir, bad_first):
    app = create_app(model_dir)
    bad = {"items": ["nope"], "k": 3}
    good = {"items": ["i3", "i4"], "k": 3}

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            order = [bad, good, good] if bad_first else [good, good, bad]
            return await asyncio.gather(*(client.post("/v1/recommend", json=b) for b in order))

    statuses = [r.status_code for r in run(main())]
    assert statuses == ([422, 200, 200] if bad_first else [200, 200, 422])
