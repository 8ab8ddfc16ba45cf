"""One loaded model answering requests: resolve a history, score it once, read attention on the way.

`Engine` is what the app swaps on hot reload: a request takes a reference at its start and finishes on
that engine even if a reload replaces it meanwhile. For attention models (a `net_` whose forward takes
`return_attention`), one forward pass gives the scores *and* the attention weights, so every request
feeds the attention monitor at no second pass; other recommenders are scored through their public
`score_histories` (no attention statistics then).

Why not `model.recommend`: it builds a DataFrame, warns about unknown items and runs the network without
weights; a request needs the unknown ids reported back, the truncation stated, and the weights of the
same pass. Scores are the model's own (`score_histories` / the net's shared scoring), and the test suite
checks they equal `model.recommend` for the same history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor

from seqlens.data.sequences import Sequences
from seqlens.errors import ArtifactError, DataError
from seqlens.monitor import AttentionStats, applied_weights, last_query_stats
from seqlens.monitor.windows import popularity_buckets
from seqlens.nn.masking import time_kwargs
from seqlens.recommenders import ModelStore, NextItemModel, Recommender, load_model


class RequestError(Exception):
    """Bad input that the client can fix: becomes a 4xx JSON error `{"error": message, ...}`."""

    def __init__(self, status: int, message: str, **extra: object):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


@dataclass
class Query:
    """A resolved request history: internal indices of its known items (oldest first) and what was dropped."""

    label: str
    items: np.ndarray
    unknown: list[str] = field(default_factory=list)
    source: str = "items"  # "items" (ad-hoc) or "user" (stored history)
    times: np.ndarray | None = None  # the items' timestamps, when known
    attributes: dict[str, str] | None = None  # the user's attributes, for a model that reads them
    context: dict[str, str] | None = None  # the request's context, for a model that reads it
    unknown_values: list[str] = field(default_factory=list)  # "column='value'" of attribute or context values training
    # never saw (read as unknown)


@dataclass
class Result:
    """Top-k internal indices and scores, the model input actually used, and (when computed) attention."""

    items: np.ndarray
    scores: np.ndarray
    used: np.ndarray  # internal indices fed to the model (the most recent max_len items)
    attentions: list[Tensor] | None  # per layer [H, T] applied weights of the last query over `used`
    stats: AttentionStats | None
    used_times: np.ndarray | None = None  # the timestamps of `used`, when known
    attributes: dict[str, str] | None = None  # the user attributes the model read
    context: dict[str, str] | None = None  # the request context the model read


class Engine:
    """A model plus the look-up tables requests need (titles, search index, popularity)."""

    def __init__(self, model: Recommender, path: Path | None = None, version: int | None = None):
        model._check_fitted()
        self.model = model
        self.path = path
        self.version = version  # the model store's version number, when served from a store
        # what every response and the request log name the model by: the store's version, else the config hash
        self.model_version = (
            str(version) if version is not None else str(getattr(model, "config_", {}).get("config_hash", "unsaved"))
        )
        self.loaded_at = time.time()
        self.max_len: int | None = getattr(model, "max_len", None)
        net = getattr(model, "net_", None)
        self.net = net if getattr(net, "has_attention", False) else None
        counts = model.history_counts()
        self.popularity = counts  # interactions per internal index in the stored histories
        self.buckets = popularity_buckets(model)  # for the request log: attention per popularity bucket
        self.titles: dict[str, str] = dict(model.item_titles_)
        # plain dicts: a request looks up one user or a few items, where a pandas Index costs ~100 us
        self._users = {str(u): row for row, u in enumerate(model.user_ids_)}
        self._items = {str(i): j + 1 for j, i in enumerate(model.item_ids_)}
        ids = [str(i) for i in model.item_ids_]
        # search: items with a title, most popular first, so a short query lists the familiar ones
        order = np.argsort(-counts[1:], kind="stable")
        self._search = [
            (ids[j], self.titles.get(ids[j], "").lower(), ids[j].lower(), int(counts[j + 1])) for j in order
        ]

    @classmethod
    def load(cls, path: str | Path, version: int | None = None) -> Engine:
        """The engine for the model saved at `path`, refused (ArtifactError) unless it actually serves.

        `path` may be a model store (`seqlens models`): then its promoted version is loaded, or `version`.
        """
        path = Path(path)
        if ModelStore.is_store(path):
            store = ModelStore(path)
            version = store.promoted() if version is None else version
            if version is None:
                raise ArtifactError(f"{path}: no version is promoted yet; run `seqlens models promote {path} N`")
            path = store.path(version)
        elif version is not None:
            raise ArtifactError(f"{path}: a model directory, not a model store: it has no versions")
        engine = cls(load_model(path), path, version)
        engine.smoke_test()
        return engine

    def smoke_test(self) -> None:
        """Finite weights, and a known user's history ranks items with finite scores: a model that would answer
        every request with an empty list is refused before it replaces a working one."""
        net = getattr(self.model, "net_", None)
        if net is not None:
            bad = [name for name, p in net.named_parameters() if not torch.isfinite(p).all()]
            if bad:
                raise ArtifactError(f"{self.path}: weights are not finite (NaN or inf) in {', '.join(bad[:3])}")
        if self._users:
            user = next(iter(self._users))
            result = self.recommend(self.resolve(user, None), min(10, self.model.n_items_), False, False)
            if len(result.items) == 0 or not np.isfinite(result.scores).all():
                raise ArtifactError(f"{self.path}: the model ranks no item with a finite score for user {user!r}")

    @property
    def has_attention(self) -> bool:
        return self.net is not None

    @property
    def layers(self) -> int:
        return int(getattr(getattr(self.net, "cfg", None), "layers", 0)) if self.net is not None else 0

    # --- requests ------------------------------------------------------------------------------------
    def resolve(
        self,
        user_id: str | None,
        items: list[str] | None,
        timestamps: list[int] | None = None,
        attributes: dict[str, str] | None = None,
        context: dict[str, str] | None = None,
    ) -> Query:
        """The history a request names: a stored user's (with the times and attributes stored with it), or an
        ad-hoc list (unknown ids reported, dropped, with their `timestamps` where given; its user `attributes`);
        and the request's `context`."""
        if (user_id is None) == (items is None):
            raise RequestError(
                422, "give exactly one of user_id (a user seen in training) or items (an ad-hoc history)"
            )
        unknown_values = self._unknown_values(attributes, "user_codes_", "user_attributes")
        unknown_values += self._unknown_values(context, "context_codes_", "context")
        if user_id is not None:
            row = self._users.get(user_id, -1)
            if row < 0:
                raise RequestError(
                    404, f"user_id {user_id!r} was not seen in training; send their history as items instead"
                )
            h = self.model.histories_
            codes = getattr(self.model, "user_codes_", None)  # a model that reads user attributes: the stored ones
            return Query(user_id, np.asarray(h[row], dtype=np.int64), source="user", times=h.times_of(row),
                         attributes=None if codes is None else codes.values_of(user_id), context=context,
                         unknown_values=unknown_values)  # fmt: skip
        if not items:
            raise RequestError(422, "items is empty; give at least one item id (oldest first)")
        idx = np.fromiter((self._items.get(i, 0) for i in items), dtype=np.int64, count=len(items))
        unknown = [i for i, j in zip(items, idx) if j == 0]
        if len(unknown) == len(items):
            raise RequestError(
                422, f"none of the {len(items)} items is known to the model", unknown_items=unknown[:100]
            )
        times = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)[idx > 0]
        return Query("session", idx[idx > 0], unknown, times=times, attributes=attributes, context=context,
                     unknown_values=unknown_values)  # fmt: skip

    def _unknown_values(self, values: dict[str, str] | None, attribute: str, name: str) -> list[str]:
        """The `values` of a request's user attributes or context (`name`; the model's vocabularies are its
        `attribute`) that training never saw ("column='value'": read as unknown); a column the model does not read,
        or values for a model that reads none, are refused."""
        if values is None:
            return []
        found = getattr(self.model, attribute, None)
        if found is None:
            raise RequestError(422, f"{name} given, but the served model reads none")
        try:
            unknown = found.of([values])[1]
        except DataError as e:
            raise RequestError(422, str(e)) from None
        return [f"{c}={v!r}" for c, vs in unknown.items() for v in vs]

    def recommend(self, query: Query, k: int, exclude_seen: bool, attention: bool) -> Result:
        """Top-k for one history (see `recommend_many`)."""
        results, stats = self.recommend_many([query], [k], [exclude_seen], attention)
        results[0].stats = stats
        return results[0]

    def recommend_many(
        self, queries: list[Query], ks: list[int], exclude_seen: list[bool], attention: bool
    ) -> tuple[list[Result], AttentionStats | None]:
        """Top-k for several histories in one forward pass (left-padded), and their attention statistics.

        With `attention` and an attention model, each result carries the last query's applied weights
        over the items it used (per layer [H, T_row]) from the same pass.
        """
        used = [q.items[-self.max_len :] if self.max_len else q.items for q in queries]
        used_times = [
            None if q.times is None else q.times[-self.max_len :] if self.max_len else q.times for q in queries
        ]
        rows = np.arange(len(queries))
        seqs = Sequences.from_lists(used, used_times)
        users, context = getattr(self.model, "user_codes_", None), getattr(self.model, "context_codes_", None)
        if users is not None:  # a model that reads user attributes: each query's (a stored user's are resolved)
            seqs = replace(seqs, user_codes=users.of([q.attributes for q in queries])[0])
        if context is not None:  # a model that reads the request's context: each query's (else unknown)
            seqs = replace(seqs, context_codes=context.of([q.context for q in queries])[0])
        weights: list[list[Tensor] | None] = [None] * len(queries)
        stats = None
        with torch.inference_mode():
            if self.net is not None and attention:
                seq, times = cast(NextItemModel, self.model).padded_inputs(seqs, rows)
                hidden, layers = self.net(seq, return_attention=True, **time_kwargs(times))
                scores = self.net.scores(cast(NextItemModel, self.model).with_query(hidden[:, -1], seqs, rows))
                stats = last_query_stats(layers, seq != 0)
                last = [applied_weights(w)[:, :, -1, :] for w in layers]  # per layer [B, H, T]
                weights = [[w[b, :, w.shape[-1] - len(u) :] for w in last] for b, u in enumerate(used)]
            else:
                scores = self.model.score_histories(seqs, rows)
            for b, q in enumerate(queries):
                if exclude_seen[b]:
                    scores[b, torch.from_numpy(q.items)] = float("-inf")
            top, idx = scores.topk(min(max(ks), self.model.n_items_), dim=1)
            top, idx = top.numpy().astype(np.float64), idx.numpy()
        results = []
        for b, k in enumerate(ks):
            keep = np.isfinite(top[b, :k])
            results.append(
                Result(
                    idx[b, :k][keep],
                    top[b, :k][keep],
                    used[b],
                    weights[b],
                    None,
                    used_times[b],
                    queries[b].attributes,
                    queries[b].context,
                )  # fmt: skip
            )
        return results, stats

    # --- items -----------------------------------------------------------------------------------------
    def item(self, item_id: str) -> dict | None:
        idx = self._items.get(item_id, 0)
        if idx == 0:
            return None
        return {"item_id": item_id, "title": self.titles.get(item_id), "interactions": int(self.popularity[idx])}

    def search(self, q: str, limit: int) -> list[dict]:
        """Items whose title or id contains `q` (case-insensitive), most interacted-with first."""
        q = q.strip().lower()
        out = []
        for item_id, title, lowered_id, interactions in self._search:
            if not q or q in title or q in lowered_id:
                out.append({"item_id": item_id, "title": self.titles.get(item_id), "interactions": interactions})
                if len(out) >= limit:
                    break
        return out

    def decode(self, idx: np.ndarray) -> list[str]:
        return [str(i) for i in self.model.decode_items(idx)] if len(idx) else []

    def describe(self) -> dict:
        """What `GET /v1/model` shows: class, version, config hash, training date, data, metrics."""
        config = getattr(self.model, "config_", {})
        return {
            "model": type(self.model).__name__,
            "model_version": self.model_version,  # the store's version, else the config hash (as in every answer)
            "seqlens_version": config.get("seqlens_version"),
            "artifact_format": config.get("format"),
            "config_hash": config.get("config_hash"),
            "trained_at": config.get("created"),
            "params": config.get("params", self.model.get_params()),
            "dataset": _without_paths(getattr(self.model, "dataset_", {})),
            "metrics": getattr(self.model, "metrics_", None),
            "n_items": int(self.model.n_items_),
            "n_users": len(self.model.user_ids_),
            "max_len": self.max_len,
            "attention": self.has_attention,
            "path": self.path.name if self.path else None,  # the directory's name: no absolute paths to clients
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
        }


def _without_paths(dataset: dict) -> dict:
    """The training data's description with file paths cut to their names (a client need not see the server's)."""
    return {k: Path(v).name if isinstance(v, str) and "/" in v else v for k, v in dataset.items()}
