"""Prometheus metrics of the service: requests and latency per endpoint, attention of served requests.

Each app owns its registry (tests build several apps in one process). With several uvicorn workers,
`seqlens serve` sets PROMETHEUS_MULTIPROC_DIR before the workers start, values go to shared files and
`/metrics` aggregates every worker through `MultiProcessCollector`.

Histograms hold everything since the start; the `seqlens_window_*` gauges describe the last
`WINDOW_SECONDS` of requests served by the current model (reset when another model is swapped in), which
is what alerting rules compare (deploy/prometheus/seqlens-alerts.yml). With several workers each worker
exports its own window (a `pid` label); the rules average over them.
"""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from seqlens.monitor import AttentionStats

if TYPE_CHECKING:
    from seqlens.serve.engine import Engine

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ENTROPY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 7.0)
MASS_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
#: the span of the rolling-window gauges
WINDOW_SECONDS = 300.0
#: the per-layer attention statistics the window gauges show (names of `AttentionStats.by_name`)
WINDOW_STATISTICS = ("normalized_entropy", "last_mass", "top1_mass")


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "seqlens_http_requests", "HTTP requests by endpoint and status code", ["endpoint", "method", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "seqlens_http_request_duration_seconds", "Time from request to response, by endpoint",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.entropy = Histogram(
            "seqlens_attention_entropy_nats",
            "Entropy of the last position's attention over the history (head mean), per layer, per served request",
            ["layer"], buckets=ENTROPY_BUCKETS, registry=r,
        )  # fmt: skip
        self.last_mass = Histogram(
            "seqlens_attention_last_item_mass",
            "Attention weight of the last position on the most recent item (head mean), per layer",
            ["layer"], buckets=MASS_BUCKETS, registry=r,
        )  # fmt: skip
        self.recommended = Counter(
            "seqlens_recommendations", "Recommend requests answered, by history source, explain flag and model version",
            ["source", "explain", "model_version"], registry=r,
        )  # fmt: skip
        self.version = Gauge(
            "seqlens_model_version", "The model store's version being served (0: a model directory, not a store)",
            multiprocess_mode="liveall", registry=r,
        )  # fmt: skip
        self.window = RollingWindow(r)
        self.unknown_items = Counter(
            "seqlens_unknown_items", "Request item ids the model did not know (ignored)", registry=r
        )
        self.truncated = Counter(
            "seqlens_truncated_histories", "Requests whose history was cut to the model's max_len", registry=r
        )
        self.batch_size = Histogram(
            "seqlens_batch_size", "Requests per forward pass (micro-batches of concurrent requests)", ["stage"],
            buckets=(1, 2, 4, 8, 16, 32, 64), registry=r,
        )  # fmt: skip
        self.reloads = Counter("seqlens_model_reloads", "Model reloads by outcome", ["outcome"], registry=r)
        self.request_log_dropped = Counter(
            "seqlens_request_log_dropped", "Requests left out of the request log (its writer fell behind)", registry=r
        )

    def serving(self, engine: Engine) -> None:
        """A model was swapped in: its version, and a fresh window (statistics of one model only)."""
        self.version.set(engine.version or 0)
        self.window.reset(int(engine.model.n_items_))

    def observe_attention(self, stats: AttentionStats) -> None:
        entropy, mass = stats.entropy.tolist(), stats.last_mass.tolist()
        for row_e, row_m in zip(entropy, mass):
            for layer, (e, m) in enumerate(zip(row_e, row_m)):
                self.entropy.labels(str(layer)).observe(e)
                self.last_mass.labels(str(layer)).observe(m)

    def exposition(self) -> bytes:
        self.window.expire()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class RollingWindow:
    """The `seqlens_window_*` gauges: means over the requests of the last `seconds`, updated per batch.

    Per layer: the last query's normalised entropy, mass on the most recent item and top-1 mass (head means);
    of the recommendations: the share of requests whose first item is the window's most frequent first item
    (a collapse onto one item), and the catalogue coverage of every recommended item.
    """

    def __init__(self, registry: CollectorRegistry, seconds: float = WINDOW_SECONDS):
        self.seconds = seconds
        per_layer = {
            "normalized_entropy": "Normalised entropy of the last query's attention (0: one item, 1: uniform)",
            "last_mass": "Attention of the last query on the most recent item",
            "top1_mass": "Largest attention weight of the last query",
        }
        self.gauges = {
            name: Gauge(f"seqlens_window_attention_{name}", f"{text}, head mean, over the window", ["layer"],
                        multiprocess_mode="liveall", registry=registry)
            for name, text in per_layer.items()
        }  # fmt: skip
        self.requests = Gauge(
            "seqlens_window_requests",
            "Recommend requests in the window",
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.top_item_share = Gauge(
            "seqlens_window_top_item_share", "Share of the window's requests whose first recommendation is the same item",
            multiprocess_mode="liveall", registry=registry,
        )  # fmt: skip
        self.coverage = Gauge(
            "seqlens_window_coverage", "Share of the catalogue recommended at least once in the window",
            multiprocess_mode="liveall", registry=registry,
        )  # fmt: skip
        self.layers_shown = 0  # per-layer series set so far (kept, as NaN, when no request feeds them)
        self.reset(1)

    def reset(self, n_items: int) -> None:
        self.n_items = max(n_items, 1)
        self.entries: deque[tuple[float, np.ndarray | None, int | None, np.ndarray]] = deque()
        self.sums: np.ndarray | None = None  # [statistics, layers], over the entries with a row
        self.attended = 0  # entries with a row: requests of an attention model with at least two items
        self.first: Tally[int] = Tally()
        self.shown: Tally[int] = Tally()
        self._publish()

    def observe(self, stats: AttentionStats | None, items: list[np.ndarray], now: float | None = None) -> None:
        """One batch: its statistics (None for a model without attention) and each request's recommended items.

        Requests of a single item say nothing about attention (all of it is on that item: entropy 0, last-item
        mass 1), so they count as requests but not in the attention means."""
        now = time.time() if now is None else now
        rows = None
        if stats is not None:
            by_name = stats.by_name()
            rows = np.stack([by_name[name].numpy() for name in WINDOW_STATISTICS], 1).astype(np.float64)  # [B, S, L]
            lengths = stats.lengths.numpy()
        for b, ranked in enumerate(items):
            row = None if rows is None or lengths[b] < 2 else rows[b]
            first = int(ranked[0]) if len(ranked) else None
            self.entries.append((now, row, first, ranked))
            if row is not None:
                self.sums = row.copy() if self.sums is None or not self.attended else self.sums + row
                self.attended += 1
            if first is not None:
                self.first[first] += 1
            self.shown.update(ranked.tolist())
        self.expire(now)

    def expire(self, now: float | None = None) -> None:
        """Drop the requests older than the window and publish; also run before every scrape, so that a service
        without traffic does not keep showing (and alerting on) what it served long ago."""
        now = time.time() if now is None else now
        while self.entries and self.entries[0][0] < now - self.seconds:
            _, row, first, ranked = self.entries.popleft()
            if row is not None and self.sums is not None:
                self.sums -= row
                self.attended -= 1
            if first is not None:
                _count_out(self.first, [first])
            _count_out(self.shown, ranked.tolist())
        self._publish()

    def _publish(self) -> None:
        n = len(self.entries)
        self.requests.set(n)
        self.top_item_share.set(max(self.first.values(), default=0) / n if n else 0.0)
        self.coverage.set(len(self.shown) / self.n_items)
        # layers without requests to average (none in the window, a model without attention or with fewer layers)
        # show NaN: a series that was set cannot be removed across worker processes, and NaN fires no rule
        layers = self.sums.shape[1] if self.sums is not None and self.attended else 0
        for s, name in enumerate(WINDOW_STATISTICS):
            for layer in range(max(layers, self.layers_shown)):
                value = self.sums[s, layer] / self.attended if layer < layers and self.sums is not None else np.nan
                self.gauges[name].labels(str(layer)).set(value)
        self.layers_shown = max(layers, self.layers_shown)


def _count_out(tally: Tally[int], items: list[int]) -> None:
    """Take one count of each item out of `tally`, dropping items that reach zero (so len() counts distinct)."""
    for item in items:
        left = tally[item] - 1
        if left:
            tally[item] = left
        else:
            del tally[item]
