"""Faithfulness measured, not assumed: do the items a method ranks highest actually drive the score?

For each user the explained item is the one `recommend` shows first (the whole history excluded). For each
method, the two baselines every explanation must beat (`recency`: the most recent items first; `random`),
and k in `ks`:
- deletion: remove the k top-attributed history items (the rest keeps its order) and record the drop of the
  item's score (a logit), its rank among the items not in the reduced history, and whether it left the top 10;
- insertion: keep only those k items (in their order) and record the item's score and whether it is in the
  top 10; an empty history scores every item 0, so the insertion score is also the gain over nothing.
Per user and method, against exact occlusion (each item's single-removal drop, the reference): Spearman
and Kendall rank correlation over the positions, whether the top-1 item is one whose removal *raises* the
score (`top1_against`: among users for whom the method names a top item: a positive score for signed
methods), and whether the top-1 item is simply the most recent one (`top1_latest`).
AOPC (area over the perturbation curve, Samek et al. 2017) is the mean deletion drop over the ks; the
insertion area is the mean insertion score over the ks. Random is averaged over `draws` draws per user.
Users need more than max(ks) items in the window the model reads, so that deleting never empties it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scipy.stats import ConstantInputWarning, kendalltau, spearmanr
from torch import Tensor

from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.eval.metrics import MISS, exclude, target_ranks
from seqlens.explain.attributions import CHUNK, METHODS, SIGNED, attribute, check_method
from seqlens.explain.explanation import recommended_items
from seqlens.nn.masking import compacted
from seqlens.nn.next_item import NextItemNet

if TYPE_CHECKING:  # annotations only: explain reads fitted models, it does not build them
    from seqlens.recommenders.neural import NextItemModel

KS = (1, 2, 3, 5)
RECENCY, RANDOM = "recency", "random"
BASELINES = (RECENCY, RANDOM)
TOP = 10  # "leaves the top-10"
REFERENCE = "occlusion"


@dataclass
class FaithfulnessResult:
    """`table`: one row per method and baseline; `per_user`: the values behind it; `protocol`: what was done.

    `per_user` has one row per (user row, method, curve, k) with `score`, `rank` and `top10`, and
    `agreement` one row per (user row, method) with `spearman`, `kendall`, `top1_against`, `top1_latest`.
    """

    table: pd.DataFrame
    per_user: pd.DataFrame
    agreement: pd.DataFrame
    protocol: dict = field(default_factory=dict)

    def curves(self) -> pd.DataFrame:
        """Long form for plots: method, curve (deletion | insertion), k, score (mean drop or mean score), top10 rate."""
        g = self.per_user.groupby(["method", "curve", "k"], sort=False)
        return g[["score", "top10"]].mean().reset_index()

    def drops(self, k: int = 3) -> pd.DataFrame:
        """Per-user deletion drops at `k`: one column per method, one row per user (for paired comparisons)."""
        mine = self.per_user[(self.per_user["curve"] == "deletion") & (self.per_user["k"] == k)]
        return mine.pivot(index="row", columns="method", values="score")


def eligible_rows(histories: Sequences, max_len: int, ks: tuple[int, ...] = KS) -> np.ndarray:
    """Rows whose window (the last `max_len` items) holds more than max(ks) items."""
    return np.flatnonzero(np.minimum(histories.lengths, max_len) > max(ks))


def faithfulness(
    model: NextItemModel,
    histories: Sequences,
    methods: tuple[str, ...] = METHODS,
    ks: tuple[int, ...] = KS,
    n_users: int | None = 500,
    draws: int = 10,
    seed: int = 0,
    exclude_seen: bool = True,
    batch_size: int = 32,
    latest: str = "min",
) -> FaithfulnessResult:
    """Deletion and insertion curves and agreement with occlusion for each method and baseline, on up to
    `n_users` histories.

    `histories` are internal-index sequences (e.g. `targets_with_histories(model, split.test,
    split.test_history)[1]`); eligible users (more than max(ks) items read) are sampled with `seed`.
    `latest` is masking's rule for the most recent item (`seqlens.explain.attributions.LATEST_RULES`).
    """
    for m in methods:
        check_method(m)
    if not ks or any(isinstance(k, bool) or int(k) < 1 for k in ks):
        raise DataError(f"ks must be positive integers, got {ks!r}")
    ks = tuple(sorted(int(k) for k in ks))
    rows = eligible_rows(histories, model.max_len, ks)
    if len(rows) == 0:
        raise DataError(f"no history has more than {max(ks)} items; faithfulness needs longer histories")
    eligible = len(rows)
    rng = np.random.default_rng(seed)
    if n_users is not None and len(rows) > n_users:
        rows = np.sort(rng.choice(rows, n_users, replace=False))
    subset = histories.subset(rows)
    targets = torch.from_numpy(recommended_items(model, subset, exclude_seen=exclude_seen))
    gen = torch.Generator().manual_seed(seed)
    names = tuple(dict.fromkeys((*methods, REFERENCE)))  # occlusion is always computed: it is the reference
    curves, agreement = [], []
    for lo in range(0, len(rows), batch_size):
        part = np.arange(lo, min(lo + batch_size, len(rows)))
        seq, times = model.padded_inputs(subset, part)
        query = model.query_vectors(subset, part)
        c, a = _batch(
            model.net_, seq, times, query, targets[part], rows[part], names, ks, draws, gen, exclude_seen, latest
        )
        curves.append(c)
        agreement.append(a)
    per_user = pd.concat(curves, ignore_index=True)
    agree = pd.concat(agreement, ignore_index=True)
    shown = [*methods, *([REFERENCE] if REFERENCE not in methods else []), *BASELINES]
    per_user = per_user[per_user["method"].isin(shown)]
    agree = agree[agree["method"].isin(shown)]
    protocol = {
        "n_users": len(rows),
        "eligible_users": eligible,
        "min_history": max(ks) + 1,
        "ks": list(ks),
        "random_draws": draws,
        "seed": seed,
        "explained_item": "the top recommendation, as recommend() ranks it"
        + (" (the whole history excluded)" if exclude_seen else ""),
        "score": "model score (logit) of the explained item",
        "rank": f"pessimistic rank after deletion among items not in the reduced window; top10: left the top {TOP}",
        "reference": "occlusion: each item's exact single-removal drop",
        "top1_against": "share of users whose top-1 item (when the method names one) raises the score when removed",
        "top1_latest": "share of users whose top-1 item is the most recent one",
    }
    return FaithfulnessResult(summarise(per_user, agree, ks), per_user, agree, protocol)


def summarise(per_user: pd.DataFrame, agreement: pd.DataFrame, ks: tuple[int, ...]) -> pd.DataFrame:
    """One row per method: drop@k, median rank and left_top10@k, AOPC, insertion, agreement, and at k=3 (or
    the middle k) the ratios to random, recency and occlusion and the share of occlusion's lead over recency kept.
    """
    mean = per_user.groupby(["method", "curve", "k"], sort=False)[["score", "top10"]].mean()
    median_rank = per_user.groupby(["method", "curve", "k"], sort=False)["rank"].median()
    agree = agreement.groupby("method", sort=False)[["spearman", "kendall", "top1_against", "top1_latest"]].mean()
    table = {}
    for method in per_user["method"].unique():
        row = {}
        for k in ks:
            row[f"drop@{k}"] = mean.loc[(method, "deletion", k), "score"]
            row[f"rank@{k}"] = median_rank.loc[(method, "deletion", k)]
            row[f"left_top10@{k}"] = mean.loc[(method, "deletion", k), "top10"]
        row["aopc"] = float(np.mean([row[f"drop@{k}"] for k in ks]))
        for k in ks:
            row[f"insert@{k}"] = mean.loc[(method, "insertion", k), "score"]
            row[f"in_top10@{k}"] = mean.loc[(method, "insertion", k), "top10"]
        row["insertion_area"] = float(np.mean([row[f"insert@{k}"] for k in ks]))
        row.update(agree.loc[method].to_dict())
        table[method] = row
    frame = pd.DataFrame(table).T
    k = 3 if 3 in ks else ks[len(ks) // 2]
    drop = frame[f"drop@{k}"]
    if RANDOM in frame.index:
        frame[f"x_random@{k}"] = drop / drop[RANDOM]
    if RECENCY in frame.index:
        frame[f"x_recency@{k}"] = drop / drop[RECENCY]
    if REFERENCE in frame.index:
        frame[f"of_occlusion@{k}"] = drop / drop[REFERENCE]
        if RECENCY in frame.index:  # share of occlusion's lead over recency that a method keeps
            frame[f"of_occlusion_margin@{k}"] = (drop - drop[RECENCY]) / (drop[REFERENCE] - drop[RECENCY])
    return frame


def perturbed_outcomes(
    net: NextItemNet,
    seq: Tensor,
    target: Tensor,
    exclude_seen: bool,
    times: Tensor | None = None,
    query: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Score [N] and pessimistic rank [N] of `target` after each sequence [N, T] (timestamps `times`; `query` [N, D]:
    the `query_vectors` of a model that reads user attributes or context), in chunks."""
    scores, ranks = torch.empty(len(seq)), torch.empty(len(seq), dtype=torch.int64)
    with torch.inference_mode():
        for lo in range(0, len(seq), CHUNK):
            s, t = seq[lo : lo + CHUNK], target[lo : lo + CHUNK]
            state = net.last_hidden(s, None if times is None else times[lo : lo + CHUNK])
            full = net.scores(state if query is None else state + query[lo : lo + CHUNK])
            scores[lo : lo + CHUNK] = full.gather(1, t[:, None])[:, 0]
            ranks[lo : lo + CHUNK] = target_ranks(exclude(full, s) if exclude_seen else full, t)
    return scores, ranks


def top_k_mask(scores: Tensor, real: Tensor, k: int) -> Tensor:
    """[B, T] True at each row's k highest-scoring real positions (ties: the earlier column first)."""
    order = torch.sort(scores.masked_fill(~real, float("-inf")), dim=1, descending=True, stable=True).indices
    place = torch.empty_like(order).scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order))
    return (place < k) & real


def _batch(
    net, seq, times, query, target, rows, methods, ks, draws, gen, exclude_seen, latest
) -> tuple[pd.DataFrame, pd.DataFrame]:
    real = seq != 0
    orders = {m: attribute(net, seq, m, target, latest, times=times).scores for m in methods}
    orders[RECENCY] = torch.arange(1, seq.shape[1] + 1, dtype=torch.float32).expand(seq.shape) * real
    for d in range(draws):  # random orders: uniform scores over the real positions
        orders[(RANDOM, d)] = torch.rand(seq.shape, generator=gen)
    base, _ = perturbed_outcomes(net, seq, target, exclude_seen, times, query)
    masks, labels = [], []
    for name, scores in orders.items():
        for k in ks:
            top = top_k_mask(scores, real, k)
            masks += [real & ~top, top]
            labels += [(name, "deletion", k), (name, "insertion", k)]
    b = len(seq)
    kept = torch.cat(masks) & (seq != 0).repeat(len(masks), 1)  # the deleted items' times go with them
    perturbed = compacted(seq.repeat(len(masks), 1), kept)
    when = None if times is None else compacted(times.repeat(len(masks), 1), kept)
    every = None if query is None else query.repeat(len(masks), 1)
    score_t, rank_t = perturbed_outcomes(net, perturbed, target.repeat(len(masks)), exclude_seen, when, every)
    score, rank = score_t.view(len(masks), b).numpy(), rank_t.view(len(masks), b).numpy()
    full = base.numpy()
    curves = []
    for i, (name, curve, k) in enumerate(labels):
        deletion = curve == "deletion"
        in_top = (rank[i] <= TOP) & (rank[i] != MISS)
        curves.append(
            pd.DataFrame(
                {
                    "row": rows,
                    "method": name[0] if isinstance(name, tuple) else name,
                    "curve": curve,
                    "k": k,
                    "score": full - score[i] if deletion else score[i],
                    "rank": np.where(rank[i] == MISS, np.nan, rank[i]).astype(np.float64),
                    "top10": ~in_top if deletion else in_top,
                }
            )
        )
    # the random draws become one value per user: their mean
    frame = pd.concat(curves, ignore_index=True)
    frame = frame.groupby(["row", "method", "curve", "k"], sort=False)[["score", "rank", "top10"]].mean().reset_index()
    return frame, _agreement(orders, orders[REFERENCE], real, rows)


def _agreement(orders: dict, reference: Tensor, real: Tensor, rows: np.ndarray) -> pd.DataFrame:
    """Per user and method: rank correlations with the reference, and what its top-1 item is."""
    out = []
    latest_col = real.shape[1] - 1
    for name, scores in orders.items():
        method = name[0] if isinstance(name, tuple) else name
        if isinstance(name, tuple) and name[1] > 0:
            continue  # one random draw is enough for the agreement columns
        top1 = scores.masked_fill(~real, float("-inf")).argmax(1)
        names_one = (
            scores.gather(1, top1[:, None])[:, 0] > 0 if method in SIGNED else torch.ones(len(top1), dtype=torch.bool)
        )
        against = reference.gather(1, top1[:, None])[:, 0] < 0
        for i in range(len(rows)):
            a, r = scores[i][real[i]].numpy(), reference[i][real[i]].numpy()
            spearman, kendall = _correlations(a, r)
            out.append(
                {
                    "row": rows[i],
                    "method": method,
                    "spearman": spearman,
                    "kendall": kendall,
                    "top1_against": float(against[i]) if names_one[i] else np.nan,
                    "top1_latest": float(top1[i] == latest_col),
                }
            )
    return pd.DataFrame(out)


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman and Kendall (tau-b) of two score vectors; 0 when either is constant (it orders nothing)."""
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a, b)[0]), float(kendalltau(a, b)[0])
