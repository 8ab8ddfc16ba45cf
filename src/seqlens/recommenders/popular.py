"""Most popular items: the baseline every sequential model must beat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqlens.data.log import ITEM, TIME, InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.recommenders.base import Recommender


class Popular(Recommender):
    """Scores every item by its number of interactions in the training log, whatever the history.

    With `period_days`, only the interactions of the training log's last `period_days` days count (all-time
    counts break ties): what is popular now, the stronger baseline when users come back after a long gap.
    """

    def __init__(self, period_days: float | None = None):
        self.period_days = period_days

    def fit(self, log: InteractionLog | pd.DataFrame, valid: InteractionLog | None = None) -> Popular:
        """`valid` is accepted for a uniform interface and not used: there is nothing to tune."""
        log = self._setup(log)
        counts = np.bincount(self.histories_.flat, minlength=self.n_items_ + 1).astype(np.float64)
        if self.period_days is not None:
            if not self.period_days > 0:
                raise DataError(f"period_days={self.period_days!r}: give a positive number of days, or None")
            if not log.has_time:
                raise DataError(f"{log.source}: Popular(period_days=...) needs timestamps, and this log has none")
            t = log.df[TIME].to_numpy()
            recent = self.encode_items(log.df[ITEM].to_numpy()[t >= t.max() - self.period_days * 86_400])
            counts = np.bincount(recent, minlength=self.n_items_ + 1) + counts / (counts.max() + 1)
        self.counts_ = torch.from_numpy(counts.astype(np.float32))
        return self

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        scores = self.counts_.expand(len(rows), -1).clone()
        scores[:, 0] = float("-inf")
        return scores

    def _state(self) -> dict[str, Tensor]:
        return {"counts": self.counts_}

    def _load_state(self, tensors: dict[str, Tensor]) -> None:
        self.counts_ = tensors["counts"]
