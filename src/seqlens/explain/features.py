"""Explanations by feature: how much each feature group of each history item moved the recommended item's score.

A feature model (`SASRec(features=[...])`) reads every item as the sum of feature groups: its identity (the id
embedding, group "item") and each attribute column. The attribution of group g at position j is the exact
score drop when that group alone is left out of that item's input vector (the item keeps its position and its
other groups), all cells of a history in one batched forward pass; a group's total is the drop when it is
left out at every position. Signed, like masking: a negative cell argued against the item and is never cited.
An id-only model has one group, so this reduces to hiding each item's identity.

A model that reads user attributes (`SASRec(user_features=[...])`) adds their vector to the state the item is
scored from: each attribute's part of the score is exactly its vector's dot product with the item's (what leaving
it out would take away), the same whatever the history; it is shared out with the cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from seqlens.errors import DataError
from seqlens.explain.explanation import encode_targets, recommended_items
from seqlens.explain.narrative import MIN_SHARE
from seqlens.nn.masking import time_kwargs
from seqlens.nn.sasrec import SASRecNet

if TYPE_CHECKING:
    from seqlens.recommenders.neural import NextItemModel


@dataclass
class FeatureExplanation:
    """Why `recommended` was scored as it was, by feature group (`groups`) and history position (oldest first)."""

    recommended: str
    recommended_title: str | None
    score: float
    groups: list[str]
    items: list[str]
    values: list[dict[str, list[str]]]  # each window item's attribute values, per column
    scores: np.ndarray  # [T, groups]: the score drop when that group of that item is left out
    totals: np.ndarray  # [groups]: the drop when the group is left out at every position
    narrative: str
    user_values: dict[str, str] | None = None  # the user's attribute values (a model that reads them)
    user_scores: np.ndarray | None = None  # [user columns]: each attribute's part of the score

    def shares(self) -> np.ndarray:
        """[T, groups]: each cell's share of the positive drops, the user attributes' included (negative: 0)."""
        positive = np.clip(self.scores, 0, None)
        total = positive.sum() + self.user_positive().sum()
        return positive / total if total > 0 else positive

    def user_shares(self) -> np.ndarray:
        """[user columns]: each user attribute's share of the positive drops, as `shares` counts them."""
        positive = self.user_positive()
        total = np.clip(self.scores, 0, None).sum() + positive.sum()
        return positive / total if total > 0 else positive

    def user_positive(self) -> np.ndarray:
        """[user columns]: the positive parts of `user_scores` (empty without them)."""
        return np.zeros(0) if self.user_scores is None else np.clip(self.user_scores, 0, None)


def feature_attributions(
    net: SASRecNet, seq: Tensor, target: Tensor, times: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(cells [B, T, G], totals [B, G], full score [B]) of `target` [B] for left-padded `seq` [B, T] (timestamps
    `times` [B, T], for a network that reads them)."""
    b, t = seq.shape
    g = len(net.groups)
    with torch.inference_mode():
        full = net.score_of(net.last_hidden(seq, times), target)  # [B]
        eye = torch.eye(t * g, dtype=torch.bool).view(t * g, t, g)  # one (position, group) cell left out per row
        every = torch.eye(g, dtype=torch.bool)[:, None, :].expand(g, t, g)  # one group left out everywhere per row
        hide = torch.cat([eye, every])  # [T*G + G, T, G]
        rows = len(hide)
        when = time_kwargs(None if times is None else times.repeat_interleave(rows, 0))
        hidden, _ = net(seq.repeat_interleave(rows, 0), hide=hide.repeat(b, 1, 1), **when)
        scores = net.score_of(hidden[:, -1], target.repeat_interleave(rows))  # [B * rows]
        drops = full[:, None] - scores.view(b, rows)
        cells = drops[:, : t * g].view(b, t, g) * (seq != 0)[..., None]
        return cells, drops[:, t * g :], full


def explain_features(
    model: NextItemModel,
    user: str | None = None,
    history: Sequence[str] | None = None,
    item: str | None = None,
    k: int = 3,
    exclude_seen: bool = True,
    timestamps: Sequence[int] | None = None,
    user_attributes: Mapping[str, str] | None = None,
) -> FeatureExplanation:
    """Explain one recommendation (`item`, default the top one) of a known `user` or an ad-hoc `history` (with its
    `timestamps`, for a model that reads time, and `user_attributes`, for one that reads them) by feature group
    and position; the narrative cites at most `k` cells (each at least 5% of the positive drops)."""
    net = getattr(model, "net_", None)
    if not isinstance(net, SASRecNet):
        raise DataError(f"explanations by feature need a SASRec model, not {type(model).__name__}")
    if (user is None) == (history is None):
        raise DataError("pass exactly one of user=... or history=[item ids, oldest first]")
    users = None if user is None else [str(user)]
    histories = None if history is None else {"history": history}
    _, seqs = model.encoded_histories(
        users, histories, None if timestamps is None else {"history": timestamps},
        None if user_attributes is None else {"history": user_attributes},
    )  # fmt: skip
    target = recommended_items(model, seqs, encode_targets(model, [item], 1), exclude_seen)
    n = min(int(seqs.lengths[0]), model.max_len)
    seq, times = model.padded_inputs(seqs, np.arange(1))
    cells, totals, full = feature_attributions(net, seq, torch.from_numpy(target), times)
    window = seq[0, -n:].numpy()
    ids = [str(i) for i in model.decode_items(window)]
    codes = getattr(model, "item_codes_", None)
    values = [
        {c: [codes.vocabularies[c][v - 1] for v in codes.codes[c][i] if v > 0] for c in codes.codes} if codes else {}
        for i in window
    ]
    recommended = str(model.decode_items(target)[0])
    title = model.item_titles_.get(recommended)
    out = FeatureExplanation(
        recommended, title, float(full[0]), net.groups, ids, values, cells[0, -n:].numpy(), totals[0].numpy(), ""
    )
    user_codes = getattr(model, "user_codes_", None)
    if user_codes is not None and seqs.user_codes is not None:
        columns = len(user_codes.columns)  # one row per attribute, the others left out
        hide = ~torch.eye(columns, dtype=torch.bool)
        with torch.inference_mode():
            each = net.user_vector(torch.from_numpy(seqs.user_codes).repeat(columns, 1), hide)  # [columns, D]
            parts = (each * net.item_vectors(torch.from_numpy(target))).sum(-1)  # [columns]
        out.user_scores = parts.detach().numpy()
        out.score += float(parts.sum())
        coded = dict(zip(user_codes.columns, seqs.user_codes[0]))
        out.user_values = {c: user_codes.vocabularies[c][v - 1] if v > 0 else "unknown" for c, v in coded.items()}
    out.narrative = _narrative(out, model.item_titles_, k)
    return out


def _narrative(e: FeatureExplanation, titles: dict, k: int) -> str:
    name = e.recommended_title or e.recommended
    shares = e.shares()
    cells = [(float(shares[j, g]), j, g) for j, g in zip(*np.nonzero(shares >= MIN_SHARE))]
    user = e.user_shares()  # a user attribute is a cell of position -1
    cells += [(float(user[c]), -1, c) for c in np.flatnonzero(user >= MIN_SHARE)]
    cells.sort(reverse=True)
    if not cells:
        return f"Recommended {name}; no single feature of your history raised its score by much."
    reasons = []
    for share, j, g in cells[:k]:
        if j < 0:
            column, value = list((e.user_values or {}).items())[g]
            reasons.append(f"your {column} ({value}) ({share:.0%})")
            continue
        item = titles.get(e.items[j]) or e.items[j]
        group = e.groups[g]
        if group == "item":
            reasons.append(f"{item} itself ({share:.0%})")
        elif group == "time":
            reasons.append(f"when {item} came after the item before it ({share:.0%})")
        else:
            shown = ", ".join(e.values[j].get(group, [])[:3]) or "none"
            reasons.append(f"the {group} of {item} ({shown}) ({share:.0%})")
    positive = np.clip(e.totals, 0, None)
    groups = list(e.groups)
    if e.user_scores is not None:  # the user's attributes, as one more group
        positive, groups = np.append(positive, e.user_positive().sum()), [*groups, "user"]
    by_group = ""
    if positive.sum() > 0 and len(groups) > 1:
        parts = [f"{g} {p / positive.sum():.0%}" for g, p in zip(groups, positive)]
        by_group = f" By feature group: {', '.join(parts)}."
    joined = reasons[0] if len(reasons) == 1 else f"{', '.join(reasons[:-1])} and {reasons[-1]}"
    return f"Recommended {name} mostly because of {joined}.{by_group}"
