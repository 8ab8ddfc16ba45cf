"""GRU4Rec as an estimator: the recurrent baseline, trained and scored exactly like SASRec."""

from __future__ import annotations

from seqlens.nn.gru4rec import GRU4RecConfig, GRU4RecNet
from seqlens.recommenders.neural import NextItemModel


class GRU4Rec(NextItemModel):
    """A GRU over the last `max_len` items; same losses, early stopping and artifacts as `SASRec`."""

    def __init__(
        self,
        max_len: int = 50,
        dim: int = 64,
        layers: int = 1,
        dropout: float = 0.2,
        loss: str = "ce",
        n_negatives: int = 256,
        epochs: int = 200,
        patience: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_patience: int = 0,
        seed: int = 0,
        progress: bool = True,
    ):
        self.max_len, self.dim, self.layers, self.dropout = max_len, dim, layers, dropout
        self.loss, self.n_negatives = loss, n_negatives
        self.epochs, self.patience, self.batch_size, self.lr = epochs, patience, batch_size, lr
        self.weight_decay, self.lr_patience, self.seed, self.progress = weight_decay, lr_patience, seed, progress
        self._validate_params()

    def _build_net(self) -> GRU4RecNet:
        return GRU4RecNet(GRU4RecConfig(n_items=self.n_items_, dim=self.dim, layers=self.layers, dropout=self.dropout))
