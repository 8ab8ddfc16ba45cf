"""SASRec as an estimator: `fit` on a log with early stopping on a validation log, `recommend`, `save`."""

from __future__ import annotations

from seqlens.nn.sasrec import SASRecConfig, SASRecNet
from seqlens.params import Schema
from seqlens.recommenders.neural import NextItemModel
from seqlens.train.trainer import TrainConfig


class SASRec(NextItemModel):
    """Self-attentive sequential recommender (Kang & McAuley 2018) with a choice of losses.

    The defaults are the ones measured on Amazon Beauty with full-softmax cross-entropy (docs/benchmarks.md).
    Every parameter is declared once, on `SASRecConfig` (the network) and `TrainConfig` (training).
    """

    schema = Schema(SASRecConfig, TrainConfig)

    def explain(self, query=None, **options):
        """Attribute a recommendation to the history: see `seqlens.explain.explain` (methods, narrative, privacy)."""
        from seqlens.explain import explain  # imported here: explain depends on recommenders, not the reverse

        return explain(self, query, **options)

    def explain_batch(self, users=None, histories=None, items=None, **options):
        """Explanations for many users at once: see `seqlens.explain.explain_batch`."""
        from seqlens.explain import explain_batch

        return explain_batch(self, users, histories, items, **options)

    def _build_net(self) -> SASRecNet:
        return SASRecNet(SASRecConfig(n_items=self.n_items_, **self._config(SASRecConfig)))
