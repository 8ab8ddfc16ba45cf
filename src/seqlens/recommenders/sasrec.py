"""SASRec as an estimator: `fit` on a log with early stopping on a validation log, `recommend`, `save`."""

from __future__ import annotations

import numpy as np

from seqlens.data.items import ItemCodes, item_codes
from seqlens.data.log import ITEM, InteractionLog
from seqlens.errors import ArtifactError, DataError
from seqlens.nn.sasrec import SASRecConfig, SASRecNet
from seqlens.recommenders.neural import NextItemModel
from seqlens.recommenders.registry import SCHEMAS


class SASRec(NextItemModel):
    """Self-attentive sequential recommender (Kang & McAuley 2018) with a choice of losses.

    The defaults are the ones measured on Amazon Beauty with full-softmax cross-entropy (docs/benchmarks.md).
    Every parameter is declared once, on `SASRecConfig` (the network) and `TrainConfig` (training).
    """

    schema = SCHEMAS["SASRec"]  # SASRecConfig and TrainConfig, declared without torch in registry.py
    features: list[str] | None  # declared on SASRecConfig (the constructor sets it)
    item_codes_: ItemCodes  # with `features`: the catalogue's attribute codes (saved as features.json)

    def _build_net(self) -> SASRecNet:
        codes = getattr(self, "item_codes_", None)
        if self.features is not None and codes is None:
            raise ArtifactError(f"features={self.features} but no attribute codes: features.json is missing")
        return SASRecNet(SASRecConfig(n_items=self.n_items_, **self._config(SASRecConfig)), codes)

    def _index_items(self, log: InteractionLog) -> None:
        """With `features`, the catalogue is the log's items followed by the attribute table's other items (cold:
        never in training, ranked by their attributes), and their attribute codes are kept."""
        super()._index_items(log)
        if self.features is None:
            return
        table = log.attributes
        if table is None:
            raise DataError(
                f"features={self.features} needs item attributes, which {log.source} has none of: fit on "
                "log.with_items(seqlens.read_items(...)) (command line: a --dataset with an attribute table)"
            )
        warm = self.n_items_
        cold = np.sort(np.setdiff1d(table.frame[ITEM].to_numpy(dtype=str), self.item_ids_.astype(str)))
        titles, cold_ids = dict(self.item_titles_), set(cold)
        if "title" in table.frame.columns:
            titles.update({i: t for i, t in zip(table.frame[ITEM], table.frame["title"]) if i in cold_ids})
        self._set_items(np.concatenate([self.item_ids_, cold.astype(object)]), titles)
        self.n_warm_ = warm
        self.item_codes_ = item_codes(table, self.item_ids_, self.features)
