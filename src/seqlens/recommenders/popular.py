"""Most popular items: the baseline every sequential model must beat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqlens.data.log import InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.recommenders.base import Recommender


class Popular(Recommender):
    """Scores every item by its number of interactions in the training log, whatever the history."""

    def __init__(self):
        pass

    def fit(self, log: InteractionLog | pd.DataFrame, valid: InteractionLog | None = None) -> Popular:
        """`valid` is accepted for a uniform interface and not used: there is nothing to tune."""
        self._setup(log)
        counts = np.bincount(self.histories_.flat, minlength=self.n_items_ + 1).astype(np.float32)
        self.counts_ = torch.from_numpy(counts)
        return self

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        scores = self.counts_.expand(len(rows), -1).clone()
        scores[:, 0] = float("-inf")
        return scores

    def _state(self) -> dict[str, Tensor]:
        return {"counts": self.counts_}

    def _load_state(self, tensors: dict[str, Tensor]) -> None:
        self.counts_ = tensors["counts"]
