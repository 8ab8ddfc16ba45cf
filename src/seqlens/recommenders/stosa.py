"""STOSA as an estimator: the second backbone of AWRSR, trained, scored, saved and explained like SASRec."""

from __future__ import annotations

from seqlens.nn.stosa import STOSAConfig, STOSANet
from seqlens.recommenders.neural import NextItemModel
from seqlens.recommenders.registry import SCHEMAS


class STOSA(NextItemModel):
    """Stochastic self-attention (Fan et al., WWW 2022): items as Gaussians, attention and ranking by Wasserstein
    distance.

    Defaults are STOSA's Beauty configuration: 1 block, 4 heads, max_len 100, dropout 0.3, the BPR loss on
    distances (`loss='bpr'`) plus the positive-vs-negative term (`pvn_weight`), Adam at a constant 1e-3, batches
    of 256. `loss='ce'` trains it with the full-softmax cross-entropy over negative distances instead. Network
    parameters are declared on `STOSAConfig`, training ones on `TrainConfig`.
    """

    schema = SCHEMAS["STOSA"]  # STOSAConfig and TrainConfig, declared without torch in registry.py

    def _build_net(self) -> STOSANet:
        return STOSANet(STOSAConfig(n_items=self.n_items_, **self._config(STOSAConfig)))
