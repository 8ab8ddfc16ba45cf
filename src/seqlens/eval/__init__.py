"""Evaluation: full-ranking metrics and the protocol that applies them to any model."""

from seqlens.eval.metrics import KS, exclude, metrics_from_ranks, target_ranks
from seqlens.eval.protocol import EvalResult, Scorer, evaluate, histories_for, rank_targets

__all__ = [
    "KS",
    "EvalResult",
    "Scorer",
    "evaluate",
    "exclude",
    "histories_for",
    "metrics_from_ranks",
    "rank_targets",
    "target_ranks",
]
