"""Monitoring of a model's attention: statistics per request and per time window, drift from a reference,
alerts, and the report (`seqlens monitor`)."""

from seqlens.monitor.attention_stats import AttentionStats, applied_weights, last_query_stats
from seqlens.monitor.drift import DEFAULT_RULES, Drift, Rule, detect, read_rules
from seqlens.monitor.replay import Answers, Requests, answer, requests_from_log, window_starts
from seqlens.monitor.report import write_report
from seqlens.monitor.windows import Windows, summarize

__all__ = [
    "DEFAULT_RULES", "Answers", "AttentionStats", "Drift", "Requests", "Rule", "Windows", "answer",
    "applied_weights", "detect", "last_query_stats", "read_rules", "requests_from_log", "summarize",
    "window_starts", "write_report",
]  # fmt: skip
