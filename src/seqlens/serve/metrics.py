"""Prometheus metrics of the service: requests and latency per endpoint, attention of served requests.

Each app owns its registry (tests build several apps in one process). With several uvicorn workers,
`seqlens serve` sets PROMETHEUS_MULTIPROC_DIR before the workers start, values go to shared files and
`/metrics` aggregates every worker through `MultiProcessCollector`.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from seqlens.monitor import AttentionStats

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ENTROPY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 7.0)
MASS_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


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
            "seqlens_recommendations", "Recommend requests answered, by history source and explain flag",
            ["source", "explain"], registry=r,
        )  # fmt: skip
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

    def observe_attention(self, stats: AttentionStats) -> None:
        entropy, mass = stats.entropy.tolist(), stats.last_mass.tolist()
        for row_e, row_m in zip(entropy, mass):
            for layer, (e, m) in enumerate(zip(row_e, row_m)):
                self.entropy.labels(str(layer)).observe(e)
                self.last_mass.labels(str(layer)).observe(m)

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
