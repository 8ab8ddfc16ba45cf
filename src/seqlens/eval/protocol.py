"""The evaluation protocol (README, "Evaluation protocol"): every target ranked against the full catalogue, batched.

`evaluate` works with any model that can encode item ids and score histories (`Scorer`), so baselines
and SASRec are measured by the same code on the same users.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqlens.data.log import ITEM, TIME, USER, InteractionLog, group_bounds
from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.eval.metrics import KS, MISS, exclude, metrics_from_ranks, target_ranks


class Scorer(Protocol):
    """What evaluation needs of a model. One that reads user attributes or request context also has
    `user_codes_for(users)` and `event_context_codes(events)`, the codes its histories are scored with (see
    `Recommender`); others need not."""

    n_items_: int

    def encode_items(self, item_ids: np.ndarray) -> np.ndarray:
        """External item ids -> internal indices 1..n_items, 0 where unknown."""

    def score_histories(self, histories: Sequences, rows: np.ndarray) -> Tensor:
        """Scores [len(rows), n_items + 1] of the next item after each history; column 0 is -inf."""


@dataclass
class EvalResult:
    """Mean metrics, the per-user values behind them (for significance tests), and the protocol used."""

    summary: dict[str, float]
    per_user: pd.DataFrame
    protocol: dict = field(default_factory=dict)

    def to_frame(self, name: str = "model") -> pd.DataFrame:
        return pd.DataFrame([self.summary], index=[name])


def histories_for(model: Scorer, users: np.ndarray, history: InteractionLog) -> Sequences:
    """Each user's history (internal indices, oldest first, unknown items dropped, with their timestamps when the
    log has them, and the user attribute codes of a model that reads them); empty if absent."""
    encoded = model.encode_items(history.df[ITEM].to_numpy())
    known = encoded > 0
    times = history.df[TIME].to_numpy(dtype=np.int64)[known] if history.has_time else None
    h_users, starts, lengths = group_bounds(history.df[USER].to_numpy()[known])
    row = pd.Index(h_users).get_indexer(users)
    found = row >= 0
    safe = np.where(found, row, 0)
    codes = getattr(model, "user_codes_for", lambda _: None)(users)  # optional (see `Scorer`)
    if len(h_users) == 0:  # no history item is known to the model: every history is empty
        empty = np.zeros(len(users), np.int64)
        return Sequences(encoded[known], empty, empty, times, codes)
    starts, lengths = np.where(found, starts[safe], 0), np.where(found, lengths[safe], 0).astype(np.int64)
    return Sequences(encoded[known], starts, lengths, times, codes)


def targets_with_histories(
    model: Scorer, targets: InteractionLog, history: InteractionLog
) -> tuple[np.ndarray, Sequences, np.ndarray]:
    """(user ids, their histories, internal target indices) in the row order of `targets`: what ranking needs."""
    users = targets.df[USER].to_numpy()
    histories = histories_for(model, users, history)
    # a model that reads request context reads each target event's own: it is known when the request is made
    context = getattr(model, "event_context_codes", lambda _: None)(targets.df)  # optional (see `Scorer`)
    return users, replace(histories, context_codes=context), model.encode_items(targets.df[ITEM].to_numpy())


def item_counts(model: Scorer, log: InteractionLog) -> np.ndarray:
    """Interactions per internal item index in `log` ([n_items + 1], index 0 counts unknown items)."""
    return np.bincount(model.encode_items(log.df[ITEM].to_numpy()), minlength=model.n_items_ + 1)


def rank_targets(
    model: Scorer,
    histories: Sequences,
    targets: np.ndarray,
    exclude_seen: bool = True,
    batch_size: int = 1024,
) -> np.ndarray:
    """Pessimistic full-ranking rank of each internal target given its history (vectorised per batch).

    Histories are batched shortest first, so that a batch is padded to a length near its own (on Beauty, mean
    length 9, random batches of 1024 were padded to max_len): each rank is the same, the padding work is not."""
    ranks = np.empty(len(targets), dtype=np.int64)
    order = np.argsort(histories.lengths, kind="stable")
    for rows, scores in scored_batches(model, histories, exclude_seen, batch_size, order):
        ranks[rows] = target_ranks(scores, torch.from_numpy(targets[rows])).numpy()
    return ranks


def rank_among_sampled(
    model: Scorer,
    histories: Sequences,
    targets: np.ndarray,
    weights: Tensor,
    n_negatives: int = 100,
    seed: int = 0,
    batch_size: int = 1024,
) -> np.ndarray:
    """Pessimistic rank of each target among `n_negatives` items drawn without replacement by `weights`.

    Negatives are never history items or the target. This is the sampled protocol of the original SASRec
    paper, kept for comparability only: it overstates accuracy and can reorder models.
    """
    gen = torch.Generator().manual_seed(seed)
    ranks = np.empty(len(targets), dtype=np.int64)
    for rows, scores in scored_batches(model, histories, True, batch_size):
        target = torch.from_numpy(targets[rows])
        w = weights.expand(len(rows), -1).clone()
        w[:, 0] = 0
        w = exclude_histories(w, histories, rows).clamp(min=0)
        w.scatter_(1, target[:, None], 0.0)
        if (w > 0).sum(1).min() < n_negatives:
            raise DataError(f"fewer than {n_negatives} candidate negatives for some user; lower n_negatives")
        negatives = torch.multinomial(w, n_negatives, replacement=False, generator=gen)
        target_scores = scores.gather(1, target[:, None])
        rank = 1 + (scores.gather(1, negatives) >= target_scores).sum(1)
        miss = (target_scores[:, 0] == float("-inf")) | (target == 0)
        ranks[rows] = torch.where(miss, torch.full_like(rank, MISS), rank).numpy()
    return ranks


def exclude_histories(scores: Tensor, histories: Sequences, rows: np.ndarray) -> Tensor:
    """`scores` [len(rows), n_items + 1] with every item of each history in `rows` at -inf: the whole history,
    not only the window a model reads."""
    return exclude(scores, torch.from_numpy(histories.padded(rows, max_len=1 << 30)))


def top_k_items(
    model: Scorer, histories: Sequences, k: int, exclude_seen: bool = True, batch_size: int = 1024
) -> np.ndarray:
    """[n, k] internal indices of each history's top-k items (0 where fewer than k candidates remain)."""
    top = np.zeros((len(histories), k), dtype=np.int64)
    for rows, scores in scored_batches(model, histories, exclude_seen, batch_size):
        values, idx = scores.topk(min(k, scores.shape[1]), dim=1)
        top[rows, : idx.shape[1]] = torch.where(values > float("-inf"), idx, 0).numpy()
    return top


#: the most scores (float32) one batch of `scored_batches` holds
SCORES_PER_BATCH = 1 << 25


def scored_batches(
    model: Scorer, histories: Sequences, exclude_seen: bool, batch_size: int, order: np.ndarray | None = None
):
    """Yield (rows, scores [len(rows), n_items + 1]) over all histories (in `order`, when given), history items
    at -inf if asked.

    Batches hold at most `batch_size` histories and SCORES_PER_BATCH scores: a catalogue of a million items is
    scored 32 users at a time (128 MB), not 1024 (4 GB)."""
    batch_size = max(1, min(batch_size, SCORES_PER_BATCH // (model.n_items_ + 1)))
    with torch.inference_mode():
        for lo in range(0, len(histories), batch_size):
            rows = np.arange(lo, min(lo + batch_size, len(histories)))
            rows = rows if order is None else order[rows]
            scores = model.score_histories(histories, rows)
            if exclude_seen:
                scores = exclude_histories(scores, histories, rows)
            yield rows, scores


def evaluate(
    model: Scorer,
    targets: InteractionLog,
    history: InteractionLog,
    ks: tuple[int, ...] = KS,
    exclude_seen: bool = True,
    batch_size: int = 1024,
    sampled: str | None = None,
    n_negatives: int = 100,
    seed: int = 0,
) -> EvalResult:
    """Rank each user's target (one row per user in `targets`) after that user's `history`.

    Returns means over users and a per-user table (user_id, item_id, rank, metrics). The ranking is
    against the full catalogue unless `sampled` is "uniform" or "popularity": then against
    `n_negatives` sampled items, and the protocol says so (never the default).
    """
    if sampled not in (None, "uniform", "popularity"):
        raise DataError(f"sampled={sampled!r}; choose None (full ranking), 'uniform' or 'popularity'")
    tdf = targets.df
    if tdf[USER].duplicated().any():
        user = tdf[USER][tdf[USER].duplicated()].iloc[0]
        raise DataError(f"{targets.source}: user {user!r} has more than one target; give one next item per user")
    users, hist, target_idx = targets_with_histories(model, targets, history)
    if sampled is None:
        ranks = rank_targets(model, hist, target_idx, exclude_seen, batch_size)
    else:
        counts = item_counts(model, history)
        weights = torch.ones(model.n_items_ + 1) if sampled == "uniform" else torch.from_numpy(counts).float()
        ranks = rank_among_sampled(model, hist, target_idx, weights, n_negatives, seed, batch_size)
    values = metrics_from_ranks(ranks, ks)
    per_user = pd.DataFrame(
        {USER: users, ITEM: tdf[ITEM].to_numpy(), "rank": ranks, "history_len": hist.lengths, **values}
    )
    per_user["rank"] = per_user["rank"].where(ranks != MISS, other=-1)  # -1: unknown or excluded target
    protocol = {
        "ranking": "full (all items)"
        if sampled is None
        else f"SAMPLED ({n_negatives} {sampled} negatives, not full ranking)",
        "ties": "pessimistic",
        "exclude_seen": exclude_seen or sampled is not None,
        "n_users": int(len(users)),
        "n_items": int(model.n_items_),
        "unknown_targets": int((target_idx == 0).sum()),
        "empty_histories": int((hist.lengths == 0).sum()),
    }
    owner, items = hist.explode()
    in_history = np.bincount(owner, weights=items == target_idx[owner], minlength=len(users)) > 0
    protocol["targets_in_history"] = int(in_history.sum())
    return EvalResult({k: float(v.mean()) for k, v in values.items()}, per_user, protocol)
