"""Attributions checked against ground truth: does the top-1 item point at the planted trigger?

On `seqlens.planted_log` data, the users whose last item (the leave-one-out test target) is governed by
a rule are explained for that item, on the history before it; a case is a hit when the top-1 attributed
position is one of the rule's trigger positions. For second-order rules the triggers are A and B, where
B is the item just before the target (so a method that always picks the latest item scores on those);
`hit_distant` counts only the distant trigger A, which no recency heuristic finds.
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
    model: NextItemModel, planted: PlantedLog, methods: tuple[str, ...] = METHODS, batch_size: int = 256
) -> pd.DataFrame:
    """Per method and rule (and "all"): cases, hit rate on any trigger, hit rate on the distant trigger A.

    The same rates are also given over the `predicted` cases, those where the model ranks the governed
    item in its top 10 (history excluded): a model that has not learned a rule gives its trigger little
    weight, and a faithful explanation of that model should not point at it either.

    The model should be trained on `leave_one_out(planted.log).train` (+ valid): the explained history
    is each user's sequence without the last item. A trigger older than the model's window is a miss
    (counted in `outside_window`).
    """
    for m in methods:
        check_method(m)
    cases = planted.truth[planted.truth["is_last"]].reset_index(drop=True)
    if cases.empty:
        raise ValueError("no user's last item is rule-governed in this planted log (end_on_rule=0?)")
    sequences = planted.log.sequences()
    encoded, positions = [], []
    for user in cases[USER]:
        idx = model.encode_items(sequences[user][:-1])
        known = np.flatnonzero(idx > 0)[-model.max_len :]  # original positions of the window the model reads
        encoded.append(idx[known])
        positions.append(known)
    histories = Sequences.from_lists(encoded)
    targets = model.encode_items(cases[ITEM].to_numpy())
    triggers = [list(t) for t in cases["triggers"]]
    outside = np.array([t[0] < p[0] if len(p) else True for t, p in zip(triggers, positions)])
    predicted = rank_targets(model, histories, targets) <= 10  # cases where the model itself gets the rule right
    rows = []
    for method in methods:
        top = np.empty(len(cases), dtype=np.int64)
        for lo in range(0, len(cases), batch_size):
            part = np.arange(lo, min(lo + batch_size, len(cases)))
            seq = torch.from_numpy(histories.padded(part, model.max_len))
            a = attribute(model.net_, seq, method, torch.from_numpy(targets[part]))
            col = a.scores.masked_fill(seq == 0, float("-inf")).argmax(1).numpy()
            for i, r in enumerate(part):  # column in the padded batch -> position in the user's sequence
                top[r] = positions[r][col[i] - (seq.shape[1] - len(positions[r]))]
        hit = np.array([t in trig for t, trig in zip(top, triggers)])
        distant = np.array([t == trig[0] for t, trig in zip(top, triggers)])
        for rule in ["all", *sorted(cases["rule"].unique())]:
            sel = np.ones(len(cases), bool) if rule == "all" else (cases["rule"] == rule).to_numpy()
            rows.append(
                {
                    "method": method,
                    "rule": rule,
                    "cases": int(sel.sum()),
                    "hit": float(hit[sel].mean()),
                    "hit_distant": float(distant[sel].mean()),
                    "outside_window": int(outside[sel].sum()),
                    "predicted": int((sel & predicted).sum()),
                    "hit_predicted": float(hit[sel & predicted].mean()) if (sel & predicted).any() else float("nan"),
                    "hit_distant_predicted": float(distant[sel & predicted].mean())
                    if (sel & predicted).any()
                    else float("nan"),
                }
            )
    return pd.DataFrame(rows)
