"""SASRec as an estimator: `fit` on a log with early stopping on a validation log, `recommend`, `save`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

from seqlens.data.codes import ContextCodes, UserCodes, context_codes, user_codes
from seqlens.data.items import ItemCodes, item_codes
from seqlens.data.log import ITEM, InteractionLog, ItemTable
from seqlens.errors import ArtifactError, DataError
from seqlens.nn.sasrec import SASRecConfig, SASRecNet
from seqlens.recommenders.base import as_log
from seqlens.recommenders.neural import NextItemModel
from seqlens.recommenders.registry import SCHEMAS


class SASRec(NextItemModel):
    """Self-attentive sequential recommender (Kang & McAuley 2018) with a choice of losses.

    The defaults are the ones measured on Amazon Beauty with full-softmax cross-entropy (docs/benchmarks.md).
    Every parameter is declared once, on `SASRecConfig` (the network) and `TrainConfig` (training).
    """

    schema = SCHEMAS["SASRec"]  # SASRecConfig and TrainConfig, declared without torch in registry.py
    features: list[str] | None  # declared on SASRecConfig (the constructor sets it)
    time: str  # declared on SASRecConfig
    time_bias: bool  # declared on SASRecConfig
    user_features: list[str] | None  # declared on SASRecConfig
    context: list[str] | None  # declared on SASRecConfig
    item_codes_: ItemCodes  # with `features`: the catalogue's attribute codes (saved as features.json)
    user_codes_: UserCodes  # with `user_features`: the users' attribute codes (saved as user_features.json)
    context_codes_: ContextCodes  # with `context`: the context vocabularies (saved as context.json)

    def _build_net(self) -> SASRecNet:
        codes, users = getattr(self, "item_codes_", None), getattr(self, "user_codes_", None)
        context = getattr(self, "context_codes_", None)
        for param, found, file in (("features", codes, "features.json"), ("user_features", users, "user_features.json"),
                                   ("context", context, "context.json")):  # fmt: skip
            if getattr(self, param) is not None and found is None:
                raise ArtifactError(f"{param}={getattr(self, param)} but no codes for it: {file} is missing")
        return SASRecNet(SASRecConfig(n_items=self.n_items_, **self._config(SASRecConfig)), codes, users, context)

    def _setup(self, log: InteractionLog | pd.DataFrame) -> InteractionLog:
        log = as_log(log)
        if (self.time != "none" or self.time_bias) and not log.has_time:
            reads = f"time={self.time!r}" if self.time != "none" else "time_bias=True"
            raise DataError(f"{reads} reads the timestamps, which {log.source} has none of")
        if self.user_features is not None:  # before the histories are stored: they keep their users' codes
            if log.user_table is None:
                raise DataError(
                    f"user_features={self.user_features} needs user attributes, which {log.source} has none of: fit "
                    "on log.with_users(seqlens.read_users(...)) (command line: a --dataset with a user table)"
                )
            self.user_codes_ = user_codes(log.user_table, self.user_features)
        else:
            self.__dict__.pop("user_codes_", None)  # a refit without user attributes
        if self.context is not None:
            self.context_codes_ = context_codes(log, self.context)
        else:
            self.__dict__.pop("context_codes_", None)
        return super()._setup(log)

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
        self._append_items(table, self._new_in(table))
        self.item_codes_ = item_codes(table, self.item_ids_, self.features)

    def _new_in(self, table: ItemTable) -> np.ndarray:
        """The ids of `table` the catalogue lacks, sorted."""
        return np.sort(np.setdiff1d(table.frame[ITEM].to_numpy(dtype=str), self.item_ids_.astype(str)))

    def _append_items(self, table: ItemTable, new: np.ndarray) -> None:
        """The catalogue followed by `new` items (cold: `n_warm_` stays), with their titles from `table`."""
        titles, added, warm = dict(self.item_titles_), set(new), self.n_warm_
        if "title" in table.frame.columns:
            titles.update({i: t for i, t in zip(table.frame[ITEM], table.frame["title"]) if i in added})
        self._set_items(np.concatenate([self.item_ids_, new.astype(object)]), titles)
        self.n_warm_ = warm

    def add_items(self, table: ItemTable) -> SASRec:
        """Add the items of `table` this fitted feature model does not know yet, as cold items ranked by their
        attributes (new products, without training again); returns the model.

        Their values are coded with the vocabularies of `fit`: a value training never saw is left out (the item
        keeps its other values) with a warning naming it; numeric columns must be cut at the training edges
        (`read_items(..., edges=model.item_codes_.bands)`). Items the model knows keep their attributes.
        """
        self._check_fitted()
        if self.features is None:
            raise DataError("add_items needs a model that reads item attributes (SASRec(features=[...]))")
        new = self._new_in(table)
        codes, unknown = self.item_codes_.extended(table, new)
        if unknown:
            warnings.warn(
                f"{table.source}: attribute values training never saw were left out: "
                + "; ".join(f"{c}: {', '.join(map(repr, vs[:5]))}" + (f" and {len(vs) - 5} more" if len(vs) > 5 else "")
                            for c, vs in unknown.items()),
                stacklevel=2,
            )  # fmt: skip
        if len(new) == 0:
            return self
        state = self.net_.state_dict()
        self._append_items(table, new)
        self.item_codes_ = codes
        ids = state["item_emb.weight"]  # the new items' id vectors are zero, as cold items' are after fit
        state["item_emb.weight"] = torch.cat([ids, ids.new_zeros(len(new), ids.shape[1])])
        self.net_ = self._build_net()
        self.net_.load_state_dict(state)
        self.net_.eval()
        return self
