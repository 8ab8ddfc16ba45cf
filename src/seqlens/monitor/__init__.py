"""Monitoring of a served model: statistics of its attention over the requests it answers."""

from seqlens.monitor.attention_stats import AttentionStats, applied_weights, last_query_stats

__all__ = ["AttentionStats", "applied_weights", "last_query_stats"]
