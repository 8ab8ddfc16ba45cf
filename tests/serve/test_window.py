"""The rolling-window gauges: means over the last seconds of requests, per layer, and what was recommended."""

from __future__ import annotations

import re

import numpy as np
import torch
from prometheus_client import CollectorRegistry, generate_latest

from seqlens.monitor import AttentionStats
from seqlens.serve.metrics import RollingWindow


def stats(entropy: list[float], last: list[float], length: int = 4) -> AttentionStats:
    """Two-layer statistics of len(entropy) requests, each of history length `length`."""
    e = torch.tensor([[x, x] for x in entropy])
    m = torch.tensor([[x, x] for x in last])
    return AttentionStats(entropy=e, last_mass=m, lengths=torch.full((len(entropy),), length), top1_mass=m, age=m)


def gauges(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {name: float(value) for name, value in re.findall(r"^(seqlens_window_\S+) (\S+)$", text, flags=re.M)}


def test_means_cover_only_the_requests_of_the_window():
    registry = CollectorRegistry()
    window = RollingWindow(registry, seconds=60)
    window.reset(n_items=10)
    window.observe(stats([np.log(4), 0.0], [0.2, 1.0]), [np.array([1, 2]), np.array([1, 3])], now=0.0)
    g = gauges(registry)
    assert g["seqlens_window_requests"] == 2
    assert abs(g['seqlens_window_attention_normalized_entropy{layer="0"}'] - 0.5) < 1e-6  # (1 + 0) / 2
    assert abs(g['seqlens_window_attention_last_mass{layer="1"}'] - 0.6) < 1e-6
    assert g["seqlens_window_top_item_share"] == 1.0  # both begin with item 1
    assert g["seqlens_window_coverage"] == 0.3  # items 1, 2, 3 of 10
    window.observe(stats([np.log(4)], [0.1]), [np.array([4, 5])], now=61.0)  # the first two have left the window
    g = gauges(registry)
    assert g["seqlens_window_requests"] == 1
    assert abs(g['seqlens_window_attention_normalized_entropy{layer="0"}'] - 1.0) < 1e-6
    assert abs(g['seqlens_window_attention_last_mass{layer="0"}'] - 0.1) < 1e-6
    assert g["seqlens_window_coverage"] == 0.2


def test_single_item_requests_count_but_do_not_look_like_a_collapse():
    registry = CollectorRegistry()
    window = RollingWindow(registry)
    window.reset(n_items=10)
    window.observe(stats([0.0] * 3, [1.0] * 3, length=1), [np.array([1])] * 3, now=0.0)
    window.observe(stats([np.log(4)], [0.25]), [np.array([2])], now=0.0)
    g = gauges(registry)
    assert g["seqlens_window_requests"] == 4 and g['seqlens_window_attention_last_mass{layer="0"}'] == 0.25


def test_a_window_without_traffic_empties_and_shows_no_attention():
    registry = CollectorRegistry()
    window = RollingWindow(registry, seconds=60)
    window.reset(n_items=10)
    window.observe(stats([0.0], [0.99]), [np.array([1, 2])], now=0.0)
    window.expire(now=120.0)  # what a scrape does: nothing served for two minutes
    g = gauges(registry)
    assert g["seqlens_window_requests"] == 0 and np.isnan(g['seqlens_window_attention_last_mass{layer="1"}'])


def test_a_new_model_starts_a_new_window():
    registry = CollectorRegistry()
    window = RollingWindow(registry)
    window.reset(n_items=5)
    window.observe(None, [np.array([1]), np.array([2])], now=0.0)  # a model without attention: counts only
    assert gauges(registry)["seqlens_window_top_item_share"] == 0.5
    window.reset(n_items=5)
    assert gauges(registry)["seqlens_window_requests"] == 0
    window.observe(stats([0.0], [0.99]), [np.array([1])], now=0.0)
    window.reset(n_items=5)  # a model without attention now: the last one's attention is not shown as current
    window.observe(None, [np.array([1])], now=1.0)
    assert np.isnan(gauges(registry)['seqlens_window_attention_last_mass{layer="0"}'])


def test_the_service_exports_the_window(client):
    for items in (["i3", "i17"], ["i5"], ["i8", "i9", "i10"]):
        assert client.post("/v1/recommend", json={"items": items, "k": 5}).status_code == 200
    text = client.get("/metrics").text
    requests = float(re.search(r"^seqlens_window_requests (\S+)$", text, flags=re.M).group(1))
    assert requests >= 3
    for layer in ("0", "1"):
        value = float(re.search(rf'^seqlens_window_attention_top1_mass{{layer="{layer}"}} (\S+)$', text, re.M).group(1))
        assert 0 < value <= 1
