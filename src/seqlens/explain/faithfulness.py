"""Faithfulness measured, not assumed: do the items a method ranks highest actually drive the score?

For each user the explained item is the top recommendation of the full history (history excluded). For
each method and k in `ks`:
- deletion: remove the k top-attributed history items (the rest keeps its order) and record the drop of
  that item's score and whether it leaves the top 10 (ranked against every item not in the reduced history);
- insertion: keep only those k items (in their order) and record the item's score and whether it is in
  the top 10; an empty history scores every item 0, so the insertion score is also the gain over nothing;
- the same deletions and insertions for k random history items (averaged over `draws` draws): the floor;
  occlusion's order (each item's exact single-item drop) is the reference a method is compared against.
AOPC (area over the perturbation curve, Samek et al. 2017) is the mean deletion drop over the ks;
the insertion area is the mean insertion score over the ks. Users need more than max(ks) history items,
so that deleting the top items never empties the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.eval.metrics import MISS, exclude, target_ranks
from seqlens.explain.attributions import CHUNK, METHODS, attribute, check_method, keep_only

if TYPE_CHECKING:  # annotations only: explain reads fitted models, it does not build them
    from seqlens.recommenders.neural import NextItemModel

KS = (1, 2, 3, 5)
RANDOM = "random"
TOP = 10  # "leaves the top-10"


@dataclass
class FaithfulnessResult:
    """`table`: one row per method (and random); `per_user`: the values behind it; `protocol`: what was done."""

    table: pd.DataFrame
    per_user: pd.DataFrame
    protocol: dict = field(default_factory=dict)

    def curves(self) -> pd.DataFrame:
        """Long form for plots: method, curve (deletion | insertion), k, score (mean drop or mean score), top10 rate."""
        g = self.per_user.groupby(["method", "curve", "k"], sort=False)
        return g[["score", "top10"]].mean().reset_index()


def eligible_rows(histories: Sequences, ks: tuple[int, ...] = KS) -> np.ndarray:
    """Rows whose history has more than max(ks) items (so every deletion leaves something)."""
    return np.flatnonzero(histories.lengths > max(ks))


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
) -> FaithfulnessResult:
    """Deletion and insertion curves of each method, random k and occlusion on up to `n_users` histories.

    `histories` are internal-index sequences (e.g. `targets_with_histories(model, split.test,
    split.test_history)[1]`); eligible users (more than max(ks) items) are sampled with `seed`.
    """
    for m in methods:
        check_method(m)
    if not ks or any(isinstance(k, bool) or int(k) < 1 for k in ks):
        raise DataError(f"ks must be positive integers, got {ks!r}")
    ks = tuple(sorted(int(k) for k in ks))
    rows = eligible_rows(histories, ks)
    if len(rows) == 0:
        raise DataError(f"no history has more than {max(ks)} items; faithfulness needs longer histories")
    rng = np.random.default_rng(seed)
    if n_users is not None and len(rows) > n_users:
        rows = np.sort(rng.choice(rows, n_users, replace=False))
    gen = torch.Generator().manual_seed(seed)
    frames = []
    for lo in range(0, len(rows), batch_size):
        part = rows[lo : lo + batch_size]
        seq = torch.from_numpy(histories.padded(part, model.max_len))
        frames.append(_batch(model.net_, seq, part, methods, ks, draws, gen, exclude_seen))
    per_user = pd.concat(frames, ignore_index=True)
    protocol = {
        "n_users": int(len(rows)),
        "eligible_users": int(len(eligible_rows(histories, ks))),
        "min_history": max(ks) + 1,
        "ks": list(ks),
        "random_draws": draws,
        "seed": seed,
        "explained_item": "top-1 recommendation of the full history" + (" (history excluded)" if exclude_seen else ""),
        "score": "model score (logit) of the explained item",
        "top10": f"deletion: share of users whose item left the top {TOP}; insertion: share with it in the top {TOP}",
        "top1_latest": "share of users whose top-1 attributed item is the most recent one",
    }
    return FaithfulnessResult(summarise(per_user, ks), per_user, protocol)


def summarise(per_user: pd.DataFrame, ks: tuple[int, ...]) -> pd.DataFrame:
    """One row per method: drop@k, left_top10@k, AOPC, insert@k, in_top10@k, insertion area, ratios at k=3.

    `top1_latest` is the share of users whose top-1 attributed item is their most recent one (for random:
    the chance of drawing it), a quick view of how much a method credits recency.
    """
    mean = per_user.groupby(["method", "curve", "k"], sort=False)[["score", "top10", "top1_latest"]].mean()
    table = {}
    for method in per_user["method"].unique():
        row = {}
        for k in ks:
            row[f"drop@{k}"] = mean.loc[(method, "deletion", k), "score"]
            row[f"left_top10@{k}"] = mean.loc[(method, "deletion", k), "top10"]
        row["aopc"] = float(np.mean([row[f"drop@{k}"] for k in ks]))
        for k in ks:
            row[f"insert@{k}"] = mean.loc[(method, "insertion", k), "score"]
            row[f"in_top10@{k}"] = mean.loc[(method, "insertion", k), "top10"]
        row["insertion_area"] = float(np.mean([row[f"insert@{k}"] for k in ks]))
        row["top1_latest"] = mean.loc[(method, "deletion", ks[0]), "top1_latest"]
        table[method] = row
    frame = pd.DataFrame(table).T
    k = 3 if 3 in ks else ks[len(ks) // 2]
    if RANDOM in frame.index:
        frame[f"x_random@{k}"] = frame[f"drop@{k}"] / frame.loc[RANDOM, f"drop@{k}"]
    if "occlusion" in frame.index:
        frame[f"of_occlusion@{k}"] = frame[f"drop@{k}"] / frame.loc["occlusion", f"drop@{k}"]
    return frame


def perturbed_outcomes(net: nn.Module, seq: Tensor, target: Tensor, exclude_seen: bool) -> tuple[Tensor, Tensor]:
    """Score [N] and pessimistic rank [N] of `target` after each sequence [N, T], in chunks."""
    scores, ranks = torch.empty(len(seq)), torch.empty(len(seq), dtype=torch.int64)
    with torch.inference_mode():
        for lo in range(0, len(seq), CHUNK):
            s, t = seq[lo : lo + CHUNK], target[lo : lo + CHUNK]
            full = net.scores(net.last_hidden(s))
            scores[lo : lo + CHUNK] = full.gather(1, t[:, None])[:, 0]
            ranks[lo : lo + CHUNK] = target_ranks(exclude(full, s) if exclude_seen else full, t)
    return scores, ranks


def top_k_mask(scores: Tensor, real: Tensor, k: int) -> Tensor:
    """[B, T] True at each row's k highest-scoring real positions (ties: the earlier column first)."""
    order = torch.sort(scores.masked_fill(~real, float("-inf")), dim=1, descending=True, stable=True).indices
    place = torch.empty_like(order).scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order))
    return (place < k) & real


def _batch(net, seq, rows, methods, ks, draws, gen, exclude_seen) -> pd.DataFrame:
    real = seq != 0
    first = attribute(net, seq, methods[0], exclude_seen=exclude_seen)
    target, base = first.target, first.target_score
    orders = {methods[0]: first.scores}
    for m in methods[1:]:
        orders[m] = attribute(net, seq, m, target, exclude_seen).scores
    for d in range(draws):  # random orders: uniform scores over the real positions
        orders[(RANDOM, d)] = torch.rand(seq.shape, generator=gen)
    masks, labels = [], []
    for name, scores in orders.items():
        for k in ks:
            top = top_k_mask(scores, real, k)
            masks += [real & ~top, top]
            labels += [(name, "deletion", k), (name, "insertion", k)]
    b = len(seq)
    latest = {n: (v.masked_fill(~real, float("-inf")).argmax(1) == seq.shape[1] - 1).numpy() for n, v in orders.items()}
    perturbed = keep_only(seq.repeat(len(masks), 1), torch.cat(masks))
    score, rank = perturbed_outcomes(net, perturbed, target.repeat(len(masks)), exclude_seen)
    score, rank = score.view(len(masks), b).numpy(), rank.view(len(masks), b).numpy()
    base = base.numpy()
    out = []
    for i, (name, curve, k) in enumerate(labels):
        deletion = curve == "deletion"
        in_top = (rank[i] <= TOP) & (rank[i] != MISS)
        out.append(
            pd.DataFrame(
                {
                    "row": rows,
                    "method": name[0] if isinstance(name, tuple) else name,
                    "curve": curve,
                    "k": k,
                    "score": base - score[i] if deletion else score[i],
                    "top10": ~in_top if deletion else in_top,
                    "top1_latest": latest[name],
                }
            )
        )
    frame = pd.concat(out, ignore_index=True)
    # the random draws become one value per user: their mean
    return (
        frame.groupby(["row", "method", "curve", "k"], sort=False)[["score", "top10", "top1_latest"]]
        .mean()
        .reset_index()
    )
