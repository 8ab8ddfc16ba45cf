"""First-order Markov chain: the next item depends only on the last one, with popularity back-off.

The simplest sequential baseline; if SASRec cannot beat it, its attention over the longer history is
not earning its cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqlens.data.log import InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.recommenders.base import Recommender


class MarkovChain(Recommender):
    """Scores item j after history h by the count of transitions last(h) -> j in training.

    Items never seen after last(h) fall back to popularity: every score is
    `count(last -> j) + popularity(j) / (max popularity + 1)`, so one observed transition always
    outranks any back-off score and ties among transitions are broken by popularity.
    """

    def __init__(self):
        pass

    def fit(self, log: InteractionLog | pd.DataFrame, valid: InteractionLog | None = None) -> MarkovChain:
        """`valid` is accepted for a uniform interface and not used: counting has nothing to tune."""
        self._setup(log)
        h = self.histories_
        n = self.n_items_ + 1
        ends = h.starts + h.lengths
        # positions with a successor inside the same history
        has_next = np.ones(len(h.flat), dtype=bool)
        has_next[ends[h.lengths > 0] - 1] = False
        src = h.flat[has_next]
        dst = h.flat[np.flatnonzero(has_next) + 1]
        pairs, counts = np.unique(src * n + dst, return_counts=True)
        rows, cols = pairs // n, pairs % n
        self.indptr_ = torch.from_numpy(np.searchsorted(rows, np.arange(n + 1)).astype(np.int64))
        self.next_items_ = torch.from_numpy(cols.astype(np.int64))
        self.next_counts_ = torch.from_numpy(counts.astype(np.float32))
        popularity = np.bincount(h.flat, minlength=n).astype(np.float32)
        self.backoff_ = torch.from_numpy(popularity / (popularity.max(initial=0.0) + 1.0))
        return self

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        last = torch.from_numpy(histories.padded(rows, max_len=1)[:, -1])
        lo, hi = self.indptr_[last], self.indptr_[last + 1]
        owner = torch.repeat_interleave(torch.arange(len(rows)), hi - lo)
        offset = torch.arange(len(owner)) - torch.repeat_interleave(torch.cumsum(hi - lo, 0) - (hi - lo), hi - lo)
        pos = torch.repeat_interleave(lo, hi - lo) + offset
        scores = self.backoff_.expand(len(rows), -1).clone()
        scores.index_put_((owner, self.next_items_[pos]), self.next_counts_[pos], accumulate=True)
        scores[:, 0] = float("-inf")
        return scores

    def _state(self) -> dict[str, Tensor]:
        return {
            "indptr": self.indptr_, "next_items": self.next_items_, "next_counts": self.next_counts_,
            "backoff": self.backoff_,
        }  # fmt: skip

    def _load_state(self, tensors: dict[str, Tensor]) -> None:
        self.indptr_ = tensors["indptr"]
        self.next_items_ = tensors["next_items"]
        self.next_counts_ = tensors["next_counts"]
        self.backoff_ = tensors["backoff"]
