"""Top-K lists made elsewhere (another library, a past run, a business rule), scored like a model.

`score_lists` ranks each test target within the user's list with `evaluate`'s own protocol, so the
metrics at K' <= K are those full ranking would give the model that produced the lists, and they pair
per user with any seqlens model evaluated on the same split (`seqlens.eval.compare`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from seqlens.data.log import ITEM, USER
from seqlens.data.splits import Split
from seqlens.eval.metrics import KS
from seqlens.eval.protocol import EvalResult, evaluate


class TopKLists:
    """A `seqlens.eval.protocol.Scorer` made from fixed top-K lists, so `seqlens.evaluate` scores them.

    Item i at rank r of a user's list scores K + 1 - r, every other item -inf: ranks inside the list are
    exact and a target outside it is a miss, so every metric at K' <= K equals that of full ranking with
    the model that produced the list (ties aside: a list has none). `users` is the row order in which
    `evaluate` asks for scores (the order of the targets' users).
    """

    def __init__(self, recs: pd.DataFrame, items: np.ndarray, users: np.ndarray, k: int = 20):
        self.item_ids_ = np.asarray(items, dtype=object)
        self.n_items_ = len(self.item_ids_)
        self._index = pd.Index(self.item_ids_)
        self.users = np.asarray(users, dtype=object)
        self.k = k
        if len(recs) and not recs["rank"].between(1, k).all():
            raise ValueError(f"ranks must be 1..{k}")
        recs = recs.assign(**{USER: recs[USER].astype(str), ITEM: recs[ITEM].astype(str)})
        self.unknown_items = int((self.encode_items(recs[ITEM].to_numpy()) == 0).sum())
        row = pd.Index(self.users).get_indexer(recs[USER])
        known = row >= 0
        self.users_without_list = int(len(self.users) - len(np.unique(row[known])))
        self._rows = row[known]
        self._items = self.encode_items(recs[ITEM].to_numpy()[known])
        self._scores = (self.k + 1 - recs["rank"].to_numpy()[known]).astype(np.float32)

    def encode_items(self, item_ids) -> np.ndarray:
        idx = self._index.get_indexer(np.asarray(item_ids, dtype=object).astype(str))
        return np.where(idx >= 0, idx + 1, 0).astype(np.int64)

    def score_histories(self, histories, rows: np.ndarray) -> torch.Tensor:
        if len(histories) != len(self.users):
            raise ValueError(f"scores asked for {len(histories)} histories, lists made for {len(self.users)} users")
        scores = torch.full((len(rows), self.n_items_ + 1), float("-inf"))
        pos = np.full(len(self.users), -1)
        pos[rows] = np.arange(len(rows))
        sel = (pos[self._rows] >= 0) & (self._items > 0)
        scores[torch.from_numpy(pos[self._rows][sel]), torch.from_numpy(self._items[sel])] = torch.from_numpy(
            self._scores[sel]
        )
        return scores


def score_lists(recs: pd.DataFrame, split: Split, items: np.ndarray, k: int = 20) -> tuple[dict, EvalResult]:
    """Score top-`k` lists (user_id, item_id, rank) of the test users with seqlens' evaluate (metrics at K <= k):
    the report's metrics and protocol, and the evaluation itself (its per-user values pair libraries).

    `items` is the catalogue (the items of the training part). The lists are scored as they are
    (exclude_seen=False), so a seen item in a list costs its slot; how many there were is reported.
    """
    scorer = TopKLists(recs, items, split.test.df[USER].to_numpy(), k)
    ks = tuple(k for k in KS if k <= scorer.k)
    result = evaluate(scorer, split.test, split.test_history, ks=ks, exclude_seen=False)
    history = split.test_history.df
    seen = recs.assign(**{USER: recs[USER].astype(str), ITEM: recs[ITEM].astype(str)}).merge(
        history[[USER, ITEM]].drop_duplicates(), on=[USER, ITEM]
    )
    scored = {
        "metrics": result.summary,
        "protocol": {
            **result.protocol,
            "ranking": f"full (all {len(items)} training items), scored from top-{scorer.k} lists",
            "list_length": scorer.k,
            "seen_items_in_lists": len(seen),
            "unknown_items_in_lists": scorer.unknown_items,
            "users_without_list": scorer.users_without_list,
        },
    }
    return scored, result
