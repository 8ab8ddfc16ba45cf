"""Full-ranking metrics from score matrices: pessimistic ranks, Recall/HR, NDCG and MRR at K.

A target's rank is the number of items scoring at least as high as it (itself included), so a tie puts
the target below every item it ties with. A target that was excluded (it is in the history and seen
items are excluded) or is unknown to the model is a miss at every K.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

KS = (1, 5, 10, 20)
MISS = np.iinfo(np.int64).max


def exclude(scores: Tensor, histories: Tensor) -> Tensor:
    """Set the scores of each row's history items (padded item indices [B, T], 0 = padding) to -inf."""
    return scores.scatter(1, histories, float("-inf"))


def target_ranks(scores: Tensor, targets: Tensor) -> Tensor:
    """Pessimistic 1-based rank of `targets` [B] in `scores` [B, n_items + 1]; MISS where it scores -inf."""
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    target_scores = scores.gather(1, targets[:, None])
    ranks = (scores >= target_scores).sum(1)
    miss = (target_scores[:, 0] == float("-inf")) | (targets == 0)
    return torch.where(miss, torch.full_like(ranks, MISS), ranks)


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, np.ndarray]:
    """Per-user metric values: recall@K (= HR@K with one target), ndcg@K, mrr@K for each K."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in ks:
        hit = ranks <= k
        out[f"recall@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)
        out[f"mrr@{k}"] = np.where(hit, 1.0 / ranks, 0.0)
    return out
