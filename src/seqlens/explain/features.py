"""Explanations by feature: how much each feature group of each history item moved the recommended item's score.

A feature model (`SASRec(features=[...])`) reads every item as the sum of feature groups: its identity (the id
embedding, group "item") and each attribute column. The attribution of group g at position j is the exact
score drop when that group alone is left out of that item's input vector (the item keeps its position and its
other groups), all cells of a history in one batched forward pass; a group's total is the drop when it is
left out at every position. Signed, like masking: a negative cell argued against the item and is never cited.
An id-only model has one group, so this reduces to hiding each item's identity.

A model that reads user attributes or request context (`SASRec(user_features=[...], context=[...])`) adds their
vectors to the state the item is scored from: each attribute's part of the score is exactly its vector's dot
product with the item's (what leaving it out would take away), the same whatever the history; these parts are
shared out with the cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from seqlens.data.sequences import Sequences
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
    #: what the model read of the request besides the history: (group, column, value), the group "user" for a user
    #: attribute, "context" for the request's context (a model that reads them)
    request: list[tuple[str, str, str]] = field(default_factory=list)
    request_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [len(request)]: each one's part

    def shares(self) -> np.ndarray:
        """[T, groups]: each cell's share of the positive drops, the request's parts included (negative: 0)."""
        return self._share_of(self.scores)

    def request_shares(self) -> np.ndarray:
        """[len(request)]: each request part's share of the positive drops, as `shares` counts them."""
        return self._share_of(self.request_scores)

    def _share_of(self, scores: np.ndarray) -> np.ndarray:
        total = np.clip(self.scores, 0, None).sum() + np.clip(self.request_scores, 0, None).sum()
        positive = np.clip(scores, 0, None)
        return positive / total if total > 0 else positive


def feature_attributions(
    net: SASRecNet, seq: Tensor, target: Tensor, times: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(cells [B, T, G], totals [B, G], the history's part of the score [B]) of `target` [B] for left-padded `seq`
    [B, T] (timestamps `times` [B, T], for a network that reads them). A model that reads user attributes or
    context adds their part to the score (`explain_features`)."""
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
    context: Mapping[str, str] | None = None,
) -> FeatureExplanation:
    """Explain one recommendation (`item`, default the top one) of a known `user` or an ad-hoc `history` (with its
    `timestamps`, for a model that reads time, and `user_attributes`, for one that reads them), asked for in
    `context` (a model that reads it), by feature group and position; the narrative cites at most `k` cells (each
    at least 5% of the positive drops)."""
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
        None if context is None else {str(user) if user is not None else "history": context},
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
    request, parts = _request_parts(model, net, seqs, torch.from_numpy(target))
    out = FeatureExplanation(recommended, title, float(full[0]) + float(parts.sum()), net.groups, ids, values,
                             cells[0, -n:].numpy(), totals[0].numpy(), "", request, parts)  # fmt: skip
    out.narrative = _narrative(out, model.item_titles_, k)
    return out


def _request_parts(
    model: NextItemModel, net: SASRecNet, seqs: Sequences, target: Tensor
) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """What the model read of the one request in `seqs` besides its history, (group, column, value) per column,
    and each column's exact part of `target`'s score: its vector's dot product with the item's."""
    request, parts = [], []
    for group, vector, coded, found in (
        ("user", net.user_vector, getattr(model, "user_codes_", None), seqs.user_codes),
        ("context", net.context_vector, getattr(model, "context_codes_", None), seqs.context_codes),
    ):
        if coded is None or found is None:
            continue
        columns = len(coded.columns)
        with torch.inference_mode():  # one row per column, the others left out
            each = vector(torch.from_numpy(found).repeat(columns, 1), ~torch.eye(columns, dtype=torch.bool))
            parts.append((each * net.item_vectors(target)).sum(-1).numpy())  # [columns]
        request += [
            (group, c, coded.vocabularies[c][v - 1] if v > 0 else "unknown") for c, v in zip(coded.columns, found[0])
        ]
    return request, np.concatenate(parts) if parts else np.zeros(0)


def _narrative(e: FeatureExplanation, titles: dict, k: int) -> str:
    name = e.recommended_title or e.recommended
    shares = e.shares()
    cells = [(float(shares[j, g]), j, g) for j, g in zip(*np.nonzero(shares >= MIN_SHARE))]
    request = e.request_shares()  # a part of the request is a cell of position -1
    cells += [(float(request[c]), -1, c) for c in np.flatnonzero(request >= MIN_SHARE)]
    cells.sort(reverse=True)
    if not cells:
        return f"Recommended {name}; no single feature of your history raised its score by much."
    reasons = []
    for share, j, g in cells[:k]:
        if j < 0:
            group, column, value = e.request[g]
            whose = "your" if group == "user" else "this request's"
            reasons.append(f"{whose} {column} ({value}) ({share:.0%})")
            continue
        item = titles.get(e.items[j]) or e.items[j]
        group = e.groups[g]
        if group == "item":
            reasons.append(f"{item} itself ({share:.0%})")
        elif group == "time":
            reasons.append(f"when {item} happened ({share:.0%})")
        else:
            shown = ", ".join(e.values[j].get(group, [])[:3]) or "none"
            reasons.append(f"the {group} of {item} ({shown}) ({share:.0%})")
    positive = np.clip(e.totals, 0, None)
    groups = list(e.groups)
    for group in dict.fromkeys(g for g, _, _ in e.request):  # the user's attributes, the context: one group each
        mine = np.array([g == group for g, _, _ in e.request])
        positive, groups = np.append(positive, np.clip(e.request_scores[mine], 0, None).sum()), [*groups, group]
    by_group = ""
    if positive.sum() > 0 and len(groups) > 1:
        parts = [f"{g} {p / positive.sum():.0%}" for g, p in zip(groups, positive)]
        by_group = f" By feature group: {', '.join(parts)}."
    joined = reasons[0] if len(reasons) == 1 else f"{', '.join(reasons[:-1])} and {reasons[-1]}"
    return f"Recommended {name} mostly because of {joined}.{by_group}"
