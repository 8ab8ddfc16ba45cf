"""What the service does per request, apart from HTTP: the current engine, reloads, and the answers.

`Handlers` holds the app's state (`ServeState`: the engine, swapped whole on reload), its metrics and its
micro-batchers; `app.py` maps each endpoint to one of its methods. Errors a client caused are
`RequestError`s (status and message), turned into JSON answers by the app.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from seqlens.errors import SeqlensError
from seqlens.monitor import AttentionStats
from seqlens.recommenders import ModelStore
from seqlens.serve import explaining
from seqlens.serve.batching import MicroBatcher
from seqlens.serve.engine import Engine, Query, RequestError, Result
from seqlens.serve.metrics import Metrics
from seqlens.serve.request_log import RequestLog
from seqlens.serve.schemas import Item, ItemList, RecommendRequest

log = logging.getLogger("seqlens.serve")


@dataclass
class ServeState:
    """What the app holds: the current engine (swapped whole on reload) and the reload machinery."""

    engine: Engine
    source: Path  # a model directory, or a model store whose promoted version is served
    reload_token: str | None = None
    generation_file: Path | None = None  # shared by the workers of one `seqlens serve`
    generation: int = 0
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    following: asyncio.Task | None = None
    request_log: RequestLog | None = None  # per-request records for `seqlens monitor --requests`
    on_swap: Callable[[Engine], None] | None = None  # told of every engine swapped in (the metrics' version)

    def read_generation(self) -> int:
        try:
            return int(self.generation_file.read_text() or 0) if self.generation_file else 0
        except (OSError, ValueError):
            return self.generation

    def current(self) -> Engine:
        """The engine to use now; starts a background reload if another worker reloaded the model."""
        if self.generation_file is not None and (self.following is None or self.following.done()):
            seen = self.read_generation()
            if seen != self.generation:
                self.following = asyncio.get_running_loop().create_task(self._follow(seen))
        return self.engine

    def swap(self, engine: Engine) -> None:
        self.engine = engine
        if self.on_swap is not None:
            self.on_swap(engine)

    async def _follow(self, generation: int) -> None:
        async with self.reload_lock:
            try:
                self.swap(await asyncio.to_thread(Engine.load, self.source))
            except Exception as e:  # keep serving the old model; the next request will not retry this generation
                log.error("following reload %d failed, still serving the previous model: %s", generation, e)
            self.generation = generation


class Handlers:
    """The request handlers of one app: each public method answers one endpoint."""

    def __init__(self, state: ServeState, metrics: Metrics):
        self.state, self.metrics = state, metrics
        state.on_swap = metrics.serving
        metrics.serving(state.engine)
        self.recommender = MicroBatcher(self._recommend_batch)
        self.explainer = MicroBatcher(self._explain_batch)
        self.batchers = {"recommend": self.recommender, "explain": self.explainer}

    def readiness(self) -> dict:
        engine = self.state.current()
        return {"ready": True, "model_version": engine.model_version, "config_hash": engine.describe()["config_hash"]}

    def health(self) -> dict:
        engine = self.state.current()
        return {"status": "ok", "model": type(engine.model).__name__, "model_version": engine.model_version,
                "config_hash": engine.describe()["config_hash"]}  # fmt: skip

    def model_info(self) -> dict:
        engine = self.state.current()
        return {**engine.describe(), "explain_methods": explaining.methods(engine),
                "default_explain_method": explaining.default_method()}  # fmt: skip

    def search(self, q: str, limit: int) -> ItemList:
        return ItemList(items=[Item(**i) for i in self.state.current().search(q, limit)])

    def item(self, item_id: str) -> Item:
        found = self.state.current().item(item_id)
        if found is None:
            raise RequestError(404, f"item {item_id!r} is not known to the model")
        return Item(**found)

    async def recommend(self, body: RecommendRequest) -> dict:
        """The answer in the shape of `RecommendResponse`, as plain JSON-ready data.

        `RecommendResponse` documents it (and the tests validate every answer against it): re-validating a
        few hundred attributions per request through pydantic cost more than the model's forward pass.
        """
        engine = self.state.current()  # this request finishes on this engine, whatever a reload does meanwhile
        method = explaining.check(engine, body.explain, body.method)
        items = None if body.items is None else [str(i) for i in body.items]
        query = engine.resolve(body.user_id, items, body.timestamps, body.user_attributes, body.context)
        result = await self.recommender.submit(engine, (query, body.k, body.exclude_seen))
        ids = engine.decode(result.items)
        notes = self._notes(query, result, ids)
        response = {
            "recommendations": [
                {"rank": r + 1, "item_id": i, "title": engine.titles.get(i), "score": s}
                for r, (i, s) in enumerate(zip(ids, result.scores.tolist()))
            ],
            "history_length": len(query.items),
            "used_length": len(result.used),
            "truncated": len(result.used) < len(query.items),
            "unknown_items": query.unknown,
            "notes": notes,
            "model_version": engine.model_version,
        }
        if body.user_id is not None:
            response["user_id"] = body.user_id
        used_ids = engine.decode(result.used) if (method is not None or body.attention) else []
        if method is not None and ids:
            response["explanation"] = await self._explanation(engine, result, method, used_ids, ids[0])
        if (body.attention or method is not None) and result.attentions is not None:
            weights = [np.round(w.numpy().astype(np.float64), 5).tolist() for w in result.attentions]
            response["attention"] = {"items": used_ids, "weights": weights}
        elif body.attention:
            notes.append(f"the served model ({type(engine.model).__name__}) has no attention weights")
        self.metrics.recommended.labels(query.source, str(method is not None).lower(), engine.model_version).inc()
        return response

    async def reload(self, authorization: str) -> dict:
        """Load the model again (a store's promoted version) and swap it in; on failure the old one keeps serving."""
        self._authorize(authorization)
        async with self.state.reload_lock:
            start = time.perf_counter()
            engine = await self._load(None)
            self._swap(engine)
        return {"reloaded": True, "seconds": round(time.perf_counter() - start, 3), "model": engine.describe()}

    async def rollback(self, authorization: str) -> dict:
        """Serve the model store's previously promoted version, without a restart: it is loaded and smoke-tested
        first, then the store rolls back and the engine is swapped; on any failure nothing changes (409)."""
        self._authorize(authorization)
        state = self.state
        if not ModelStore.is_store(state.source):
            raise RequestError(409, "rollback needs a model store (`seqlens models`); this service serves a directory")
        async with state.reload_lock:
            start = time.perf_counter()
            try:  # a corrupt or unreadable store, or one changed meanwhile: nothing changes
                store = ModelStore(state.source)
                previous = store.previous()
                if previous is None:
                    raise RequestError(409, "nothing to roll back to: the store has no earlier promoted version")
                engine = await self._load(previous, f"rollback to version {previous}")
                current, _ = store.rollback(expect=previous)
            except (SeqlensError, OSError) as e:
                raise RequestError(409, f"rollback failed, still serving version {state.engine.version}: {e}") from None
            self._swap(engine)
        seconds = round(time.perf_counter() - start, 3)
        return {"rolled_back": True, "from": current, "to": previous, "seconds": seconds, "model": engine.describe()}

    def _authorize(self, authorization: str) -> None:
        """Admin endpoints need the configured bearer token (compared in constant time); off without one."""
        if not self.state.reload_token:
            raise RequestError(
                403,
                "admin endpoints (reload, rollback) are disabled: start the server with --reload-token (or SEQLENS_RELOAD_TOKEN)",
            )
        scheme, _, given = authorization.partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""  # the scheme is case-insensitive (RFC 7235)
        if not hmac.compare_digest(given.encode(), self.state.reload_token.encode()):
            raise RequestError(401, "missing or wrong token: send 'Authorization: Bearer <token>'")

    async def _load(self, version: int | None, action: str = "reload") -> Engine:
        """The engine of the served source (a store's `version`, or its promoted one), loaded in a thread."""
        try:
            return await asyncio.to_thread(Engine.load, self.state.source, version)
        except Exception as e:  # whatever went wrong with the new model, the old one keeps serving
            self.metrics.reloads.labels("failed").inc()
            reason = str(e) if isinstance(e, (SeqlensError, OSError)) else f"{type(e).__name__}: {e}"
            raise RequestError(409, f"{action} failed, still serving the previous model: {reason}") from None

    def _swap(self, engine: Engine) -> None:
        """Serve `engine` from now on; the other workers of this service follow (the generation file)."""
        state = self.state
        state.swap(engine)
        if state.generation_file is not None:
            state.generation = state.read_generation() + 1
            state.generation_file.write_text(str(state.generation))
        self.metrics.reloads.labels("ok").inc()

    def _notes(self, query: Query, result: Result, ids: list[str]) -> list[str]:
        """What the client should know about how its history was read (and the matching counters)."""
        notes = []
        if query.unknown:
            notes.append(f"ignored {len(query.unknown)} item ids unknown to the model")
            self.metrics.unknown_items.inc(len(query.unknown))
        notes += [f"{value} is unknown to the model (read as unknown)" for value in query.unknown_values]
        if len(result.used) < len(query.items):
            notes.append(
                f"the history has {len(query.items)} known items; the model read the most recent {len(result.used)}"
            )
            self.metrics.truncated.inc()
        if not ids:
            notes.append("no items left to recommend: every item is in the history (exclude_seen=true)")
        return notes

    async def _explanation(self, engine: Engine, result: Result, method: str, used_ids: list[str], item: str) -> dict:
        """The top item's explanation: from the forward pass when it suffices, batched when the method is
        cheap, in a thread (so the loop keeps serving) when it is slow."""
        fast = explaining.from_pass(engine, result) if method == "attention" else None
        if fast is not None:
            return fast
        if method in explaining.INLINE:
            return await self.explainer.submit(
                (engine, method), (used_ids, item, result.used_times, result.attributes, result.context)
            )
        return await asyncio.to_thread(
            explaining.explain, engine, used_ids, item, method, result.used_times, result.attributes, result.context
        )

    def _recommend_batch(self, key: Hashable, batch: list) -> list:
        engine = cast(Engine, key)  # requests are batched per engine: a reload never mixes two models
        queries, ks, exclude = zip(*batch)
        results, stats = engine.recommend_many(list(queries), list(ks), list(exclude), attention=engine.has_attention)
        self.metrics.batch_size.labels("recommend").observe(len(batch))
        if stats is not None:
            self.metrics.observe_attention(stats)
        if engine is self.state.engine:  # the window describes the current model (not requests finishing on an old one)
            self.metrics.window.observe(stats, [r.items for r in results])
        if self.state.request_log is not None:
            self._log_requests(engine, queries, results, stats)
        return results

    def _log_requests(self, engine: Engine, queries: tuple, results: list, stats: AttentionStats | None) -> None:
        """The batch's numbers for the request log (its writer process builds and writes the records)."""
        if not cast(RequestLog, self.state.request_log).record(time.time(), engine, queries, results, stats):
            self.metrics.request_log_dropped.inc(len(queries))

    def _explain_batch(self, key: Hashable, batch: list) -> list:
        engine, method = cast(tuple[Engine, str], key)  # batched per engine and method
        self.metrics.batch_size.labels("explain").observe(len(batch))
        return explaining.explain_many(engine, method, batch)
