"""Approximate top-K retrieval for catalogues too large to score exactly: a FAISS inverted-file index over a
neural model's item vectors.

A next-item model scores item i as the inner product of the history's last hidden state with item i's vector, so
the top K is a maximum-inner-product search. Exact scoring (`model.recommend`) costs n_items x dim per user; the
index visits only `nprobe` of its `nlist` clusters of items. Item vectors' norms differ widely (popular items'
are long), which clusters badly by inner product, so the search is turned into a nearest-neighbour one (Bachrach
et al. 2014): each item gets one more coordinate, sqrt(M^2 - |x|^2) with M the largest norm, each query a 0 there;
then |q - x|^2 = |q|^2 + M^2 - 2 q.x, and the nearest items are those of largest score. What it returns is the same table as `recommend`
(seen items excluded), and `recall_against_exact` says how much of the exact top K it finds.

FAISS is an optional dependency (`pip install seqlens[ann]`, the faiss-cpu wheel).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from seqlens.errors import DataError

if TYPE_CHECKING:
    from seqlens.recommenders.neural import NextItemModel


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise DataError("the approximate index needs FAISS: pip install 'seqlens[ann]' (or faiss-cpu)") from None
    return faiss


class ItemIndex:
    """Inverted-file index (FAISS `IndexIVFFlat`) over `model`'s item vectors, searched by inner product.

    Parameters
    ----------
    model : a fitted neural model (SASRec, GRU4Rec); the index holds a copy of its item vectors, so rebuild it
        after the model changes.
    nlist : clusters of items (default 4 x sqrt(n_items)); each query scores the items of `nprobe` of them.
    nprobe : clusters visited per query: more finds more of the exact top K, and costs proportionally more.
    train_size : items sampled (seed 0) to learn the clusters.
    """

    def __init__(self, model: NextItemModel, nlist: int | None = None, nprobe: int = 32, train_size: int = 200_000):
        faiss = _faiss()
        model._check_fitted()
        self.model = model
        with torch.inference_mode():
            vectors = model.net_.item_table()[1:].detach().float().cpu().numpy()  # [n_items, D]: row i is item i + 1
        n, dim = vectors.shape
        self.nlist = nlist or max(1, min(n // 39, int(4 * math.sqrt(n))))  # FAISS wants >= 39 training items per list
        norms = (vectors.astype(np.float64) ** 2).sum(1)
        self.reach = float(norms.max())  # M^2
        lifted = np.hstack([vectors, np.sqrt(self.reach - norms)[:, None]]).astype(np.float32)  # [n_items, D + 1]
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim + 1), dim + 1, self.nlist, faiss.METRIC_L2)
        sample = np.random.default_rng(0).choice(n, min(n, train_size), replace=False)
        self.index.train(np.ascontiguousarray(lifted[sample]))
        self.index.add(lifted)
        self.index.nprobe = min(nprobe, self.nlist)

    def recommend(
        self,
        users: Sequence | None = None,
        histories: Mapping[str, Sequence] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int = 512,
        timestamps: Mapping[str, Sequence[int]] | None = None,
        user_attributes: Mapping[str, Mapping[str, str]] | None = None,
        context: Mapping[str, Mapping[str, str]] | None = None,
    ) -> pd.DataFrame:
        """`model.recommend`'s table (user_id, item_id, score, rank) from the index instead of exact scoring (the
        arguments are `model.recommend`'s)."""
        model = self.model
        labels, seqs = model.encoded_histories(users, histories, timestamps, user_attributes, context)
        frames = []
        for lo in range(0, len(seqs), batch_size):
            rows = np.arange(lo, min(lo + batch_size, len(seqs)))
            hidden = model.last_hidden_of(seqs, rows).float().cpu().numpy()  # [B, D]
            seen = seqs.padded(rows, max_len=1 << 30) if exclude_seen else np.zeros((len(rows), 0), np.int64)
            # asked for k + the longest history among the batch's, so that k remain once seen items are dropped
            lifted = np.hstack([hidden, np.zeros((len(hidden), 1), np.float32)])
            distances, idx = self.index.search(lifted, min(k + seen.shape[1], self.index.ntotal))
            scores = ((hidden.astype(np.float64) ** 2).sum(1, keepdims=True) + self.reach - distances) / 2  # q . x
            idx = idx + 1  # row i of the index is item index i + 1; FAISS's -1 (no result) becomes 0
            drop = (idx <= 0) | np.stack([np.isin(found, mine) for found, mine in zip(idx, seen)])
            scores = np.where(drop, -np.inf, scores)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            frames.append(model._table(labels[rows], np.take_along_axis(scores, order, 1),
                                       np.take_along_axis(idx, order, 1)))  # fmt: skip
        return pd.concat(frames, ignore_index=True)


def recall_against_exact(approximate: pd.DataFrame, exact: pd.DataFrame, k: int) -> float:
    """Mean over users of |approximate top k & exact top k| / |exact top k| (tables as `recommend` returns)."""
    found = approximate.groupby("user_id")["item_id"].apply(set)
    truth = exact.groupby("user_id")["item_id"].apply(lambda s: set(s.iloc[:k]))
    return float(np.mean([len(found.get(u, set()) & t) / max(len(t), 1) for u, t in truth.items()]))
