"""SASRec as an estimator: `fit` on a log with early stopping on a validation log, `recommend`, `save`."""

from __future__ import annotations

from seqlens.nn.sasrec import SASRecConfig, SASRecNet
from seqlens.recommenders.neural import NextItemModel
from seqlens.recommenders.registry import SCHEMAS


class SASRec(NextItemModel):
    """Self-attentive sequential recommender (Kang & McAuley 2018) with a choice of losses.

    The defaults are the ones measured on Amazon Beauty with full-softmax cross-entropy (docs/benchmarks.md).
    Every parameter is declared once, on `SASRecConfig` (the network) and `TrainConfig` (training).
    """

    schema = SCHEMAS["SASRec"]  # SASRecConfig and TrainConfig, declared without torch in registry.py

    def _build_net(self) -> SASRecNet:
        return SASRecNet(SASRecConfig(n_items=self.n_items_, **self._config(SASRecConfig)))
