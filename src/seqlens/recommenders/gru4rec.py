"""GRU4Rec as an estimator: the recurrent baseline, trained and scored exactly like SASRec."""

from __future__ import annotations

from seqlens.nn.gru4rec import GRU4RecConfig, GRU4RecNet
from seqlens.recommenders.neural import NextItemModel
from seqlens.recommenders.registry import SCHEMAS


class GRU4Rec(NextItemModel):
    """A GRU over the last `max_len` items; same losses, early stopping and artifacts as `SASRec`.

    Its network parameters are declared on `GRU4RecConfig`, training ones on `TrainConfig` (here with a
    constant learning rate of 1e-3, the GRU4Rec setting).
    """

    schema = SCHEMAS["GRU4Rec"]  # GRU4RecConfig and TrainConfig, declared without torch in registry.py

    def _build_net(self) -> GRU4RecNet:
        return GRU4RecNet(GRU4RecConfig(n_items=self.n_items_, **self._config(GRU4RecConfig)))
