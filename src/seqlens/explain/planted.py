"""Attributions checked against ground truth: does the top-attributed item point at the planted trigger?

On a synthetic test bed (`seqlens.planted_log`, or `seqlens.trigger_families`, built differently), the users
whose last item (the leave-one-out test target) is governed by a rule are explained for that item, on the
history before it. Cases are grouped by family (`trigger_families`' `family` column, else the rule). A case
is a top-1 hit when the top-attributed position holds a trigger, and a top-3 hit when the three
top-attributed positions hold every trigger item the rule needs (A for a one-trigger rule; both for
second-order and two-trigger rules). For `planted_log`'s second-order rule, B is the item just before the
target, so a method that always picks the latest item scores there; `hit_distant` counts only the first,
distant trigger, which no recency heuristic finds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from seqlens.data.log import ITEM, USER
from seqlens.data.sequences import Sequences
from seqlens.data.synthetic import PlantedLog
from seqlens.eval.protocol import rank_targets
from seqlens.explain.attributions import METHODS, attribute, check_method

if TYPE_CHECKING:  # annotations only: explain reads fitted models, it does not build them
    from seqlens.recommenders.neural import NextItemModel


def trigger_hits(
    model: NextItemModel,
    planted: PlantedLog,
    methods: tuple[str, ...] = METHODS,
    batch_size: int = 256,
    latest: str = "min",
) -> pd.DataFrame:
    """Per method and family (and "all"): cases, top-1 hit rate, top-3 hit rate, distant-trigger hit rate.

    The same rates are also given over the `predicted` cases, those where the model ranks the governed item
    in its top 10, and the `top1` cases, where it is the model's first choice (the history kept: rule items
    recur on a test bed): a model that has not learned a rule gives its trigger little weight, and a faithful
    explanation of that model should not point at it. `miss_latest_top1`: among the first-choice cases the
    method misses, the share whose top item is the most recent one.

    The model should be trained on `leave_one_out(planted.log).train` (+ valid): the explained history is
    each user's sequence without the last item. A trigger older than the model's window is a miss (counted
    in `outside_window`).
    """
    for m in methods:
        check_method(m)
    cases = planted.truth[planted.truth["is_last"]]
    cases = cases[model.encode_items(cases[ITEM].to_numpy()) > 0].reset_index(drop=True)  # items it can score
    if cases.empty:
        raise ValueError("no user's last item is rule-governed in this test bed (end_on_rule=0?)")
    families = cases["family"] if "family" in cases.columns else cases["rule"]
    sequences = planted.log.sequences()
    encoded, positions, needed = [], [], []
    for user, triggers in zip(cases[USER], cases["triggers"]):
        idx = model.encode_items(sequences[user][:-1])
        known = np.flatnonzero(idx > 0)[-model.max_len :]  # original positions of the window the model reads
        encoded.append(idx[known])
        positions.append(known)
        needed.append({sequences[user][t] for t in triggers})
    histories = Sequences.from_lists(encoded)
    targets = model.encode_items(cases[ITEM].to_numpy())
    triggers = [set(t) for t in cases["triggers"]]
    first = [min(t) for t in triggers]
    outside = np.array([f < p[0] if len(p) else True for f, p in zip(first, positions)])
    rank = rank_targets(model, histories, targets, exclude_seen=False)
    predicted, first_choice = rank <= 10, rank == 1
    rows = []
    for method in methods:
        ranked = _top_positions(model, histories, targets, positions, method, batch_size, latest)
        top1 = np.array([bool(r) and r[0] in t for r, t in zip(ranked, triggers)])
        on_latest = np.array([bool(r) and r[0] == p[-1] for r, p in zip(ranked, positions)])  # the most recent item
        distant = np.array([bool(r) and r[0] == f for r, f in zip(ranked, first)])
        top3 = np.array(
            [
                n <= {sequences[u][p] for p in r[:3] if p in t}
                for r, t, n, u in zip(ranked, triggers, needed, cases[USER])
            ]
        )
        for family in ["all", *sorted(families.unique())]:
            sel = np.ones(len(cases), bool) if family == "all" else (families == family).to_numpy()
            both, top = sel & predicted, sel & first_choice

            def rate(hit: np.ndarray, where: np.ndarray) -> float:
                return float(hit[where].mean()) if where.any() else float("nan")

            rows.append(
                {
                    "method": method,
                    "family": family,
                    "cases": int(sel.sum()),
                    "hit": rate(top1, sel),
                    "hit3": rate(top3, sel),
                    "hit_distant": rate(distant, sel),
                    "outside_window": int(outside[sel].sum()),
                    "predicted": int(both.sum()),
                    "hit_predicted": rate(top1, both),
                    "hit3_predicted": rate(top3, both),
                    "hit_distant_predicted": rate(distant, both),
                    "top1": int(top.sum()),
                    "hit_top1": rate(top1, top),
                    "hit3_top1": rate(top3, top),
                    "miss_latest_top1": rate(on_latest, top & ~top1),
                }
            )
    return pd.DataFrame(rows)


def _top_positions(model, histories, targets, positions, method, batch_size, latest) -> list[list[int]]:
    """Each case's three top-attributed positions, as positions in the user's sequence (best first)."""
    out: list[list[int]] = []
    for lo in range(0, len(histories), batch_size):
        part = np.arange(lo, min(lo + batch_size, len(histories)))
        seq, times = model.padded_inputs(histories, part)
        a = attribute(model.net_, seq, method, torch.from_numpy(targets[part]), latest, times=times)
        order = torch.sort(a.scores.masked_fill(seq == 0, float("-inf")), dim=1, descending=True, stable=True).indices
        for i, r in enumerate(part):  # column in the padded batch -> position in the user's sequence
            offset = seq.shape[1] - len(positions[r])
            out.append([int(positions[r][c - offset]) for c in order[i, :3].tolist() if c >= offset])
    return out
