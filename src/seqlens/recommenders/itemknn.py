"""Item-kNN: items that co-occur in the same histories are similar; recent history items count more."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqlens.data.log import InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.recommenders.base import Recommender


class ItemKNN(Recommender):
    """Cosine similarity of item co-occurrence within user histories, summed over the recent history.

    `sim(i, j) = users(i and j) / sqrt(users(i) * users(j))`; each item keeps its `neighbors` most
    similar items. The score of j after history h is `sum_t decay**age_t * sim(h_t, j)` over the last
    `window` items of h (age 0 = the most recent item).
    """

    def __init__(self, neighbors: int = 100, window: int = 20, decay: float = 0.8):
        self.neighbors = neighbors
        self.window = window
        self.decay = decay

    def fit(self, log: InteractionLog | pd.DataFrame, valid: InteractionLog | None = None) -> ItemKNN:
        """`valid` is accepted for a uniform interface and not used."""
        for name in ("neighbors", "window"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise DataError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0 < self.decay <= 1:
            raise DataError(f"decay must be in (0, 1], got {self.decay!r}")
        self._setup(log)
        n = self.n_items_ + 1
        owner, item = self.histories_.explode()
        pairs = np.unique(owner * n + item)  # each (user, item) once
        users, items = pairs // n, pairs % n
        x = torch.sparse_coo_tensor(
            torch.from_numpy(np.stack([users, items])),
            torch.ones(len(pairs)),
            (len(self.histories_), n),
            check_invariants=True,
        ).coalesce()
        with warnings.catch_warnings():  # torch marks sparse x sparse products as beta; the result is exact
            warnings.simplefilter("ignore", UserWarning)
            co = torch.sparse.mm(x.t().coalesce(), x).coalesce()
        (rows, cols), counts = co.indices().numpy(), co.values().numpy()
        off_diagonal = rows != cols
        rows, cols, counts = rows[off_diagonal], cols[off_diagonal], counts[off_diagonal]
        support = np.bincount(items, minlength=n).astype(np.float64)
        sims = counts / np.sqrt(support[rows] * support[cols])
        order = np.lexsort((-sims, rows))  # by row, most similar first
        rows, cols, sims = rows[order], cols[order], sims[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
        top = rank < self.neighbors
        width = max(1, min(self.neighbors, int(rank.max(initial=0)) + 1))
        self.neighbor_items_ = torch.zeros(n, width, dtype=torch.int64)
        self.neighbor_sims_ = torch.zeros(n, width)
        self.neighbor_items_[rows[top], rank[top]] = torch.from_numpy(cols[top])
        self.neighbor_sims_[rows[top], rank[top]] = torch.from_numpy(sims[top].astype(np.float32))
        return self

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        recent = torch.from_numpy(histories.padded(rows, max_len=self.window))  # [B, T], newest last
        ages = torch.arange(recent.shape[1] - 1, -1, -1, dtype=torch.float32)
        weights = (self.decay**ages)[None, :] * (recent != 0)  # padding (index 0) has no neighbours anyway
        contrib = self.neighbor_sims_[recent] * weights[..., None]  # [B, T, K]
        scores = torch.zeros(len(rows), self.n_items_ + 1)
        scores.scatter_add_(1, self.neighbor_items_[recent].flatten(1), contrib.flatten(1))
        scores[:, 0] = float("-inf")
        return scores

    def _state(self) -> dict[str, Tensor]:
        return {"neighbor_items": self.neighbor_items_, "neighbor_sims": self.neighbor_sims_}

    def _load_state(self, tensors: dict[str, Tensor]) -> None:
        self.neighbor_items_ = tensors["neighbor_items"]
        self.neighbor_sims_ = tensors["neighbor_sims"]
