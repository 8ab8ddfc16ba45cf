"""`Explanation` and the functions behind `model.explain` / `model.explain_batch`.

An explanation covers the window of history the model reads (the last `max_len` items, oldest first):
one score per position, in that order, plus ids, titles and, when given, timestamps. The model does not
store timestamps (only item sequences), so times come from the caller (`timestamps=`), e.g. from the
interaction log; without them the narrative simply gives no ages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from seqlens.data.log import ITEM, TIME, USER, InteractionLog
from seqlens.errors import DataError
from seqlens.explain.attributions import TARGET_AGNOSTIC, attribute, check_method
from seqlens.explain.narrative import DEFAULT_VERB, MIN_SHARE, Citation, narrative
from seqlens.explain.privacy import OTHER, DenyList, as_deny_list

if TYPE_CHECKING:  # annotations only: explain reads fitted models, it does not build them
    from seqlens.recommenders.neural import NextItemModel

#: the method used when none is named. Last-layer attention alone falls far short of occlusion on real data;
#: gradient-weighted rollout is the most faithful method that answers within 20 ms at L=200, and the one that
#: finds the planted triggers of the synthetic test bed (docs/explanations.md has the numbers)
DEFAULT_METHOD = "gradrollout"


@dataclass
class Explanation:
    """Why `recommended` was scored as it was, by `method`: one score per history position, oldest first.

    `items`, `titles`, `timestamps` and `scores` are aligned with the history window the model read.
    Deny-listed positions show `OTHER` as id and title (and no time); their summed share is `other_share`.
    Attention-based methods (`target_agnostic`) give the same scores whichever item is explained.
    """

    recommended: str
    recommended_title: str | None
    score: float
    method: str
    items: list[str]
    titles: list[str | None]
    scores: np.ndarray
    narrative: str
    timestamps: list[int | None] | None = None
    user: str | None = None
    per_head: np.ndarray | None = None
    hidden: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    target_agnostic: bool = False

    @property
    def shares(self) -> np.ndarray:
        """Each position's share of the positive attribution mass (sums to 1 unless nothing is positive)."""
        return shares_of(self.scores)

    @property
    def other_share(self) -> float:
        """The summed share of the deny-listed positions, reported as "other items"."""
        return float(self.shares[self.hidden].sum()) if self.hidden.any() else 0.0

    def top(self, k: int = 5) -> list[tuple[str, str | None, float]]:
        """The `k` named positions with the largest scores: (item id, title, share), best first."""
        order = [int(j) for j in np.argsort(-self.scores, kind="stable") if not self.hidden[j]]
        return [(self.items[j], self.titles[j], float(self.shares[j])) for j in order[:k]]

    def to_frame(self) -> pd.DataFrame:
        """One row per history position: position, item_id, title, timestamp, score, share."""
        n = len(self.items)
        return pd.DataFrame(
            {
                "position": np.arange(n),
                ITEM: self.items,
                "title": self.titles,
                TIME: pd.array(self.timestamps if self.timestamps is not None else [None] * n, dtype="Int64"),
                "score": self.scores.astype(np.float64),
                "share": self.shares,
            }
        )

    def to_dict(self) -> dict:
        """JSON-ready form (what `seqlens explain --json` prints)."""
        return {
            "user": self.user,
            "recommended": self.recommended,
            "recommended_title": self.recommended_title,
            "score": self.score,
            "method": self.method,
            "target_agnostic": self.target_agnostic,
            "narrative": self.narrative,
            "other_share": self.other_share,
            "history": self.to_frame().astype(object).where(lambda f: f.notna(), None).to_dict("records"),
        }


def shares_of(scores: np.ndarray) -> np.ndarray:
    """Positive parts normalised to sum to 1 (all zeros when no score is positive)."""
    positive = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    total = positive.sum()
    return positive / total if total > 0 else positive


def explain(
    model: NextItemModel,
    query: str | Sequence[str] | None = None,
    *,
    user: str | None = None,
    history: Sequence[str] | None = None,
    item: str | None = None,
    k: int = 5,
    method: str = DEFAULT_METHOD,
    timestamps: Sequence[int] | None = None,
    now: int | None = None,
    deny: DenyList | Sequence[str] | None = None,
    verb: str = DEFAULT_VERB,
    exclude_seen: bool = True,
) -> Explanation:
    """Explain one recommendation: `item` (default: the top one) for a known `user` or an ad-hoc `history`.

    `query` is a shortcut: a string is a user id, a list of item ids a history. `k` bounds how many items
    the narrative cites (items under 5% are not cited). `timestamps` (seconds, aligned with the history
    as given, or with `model.history_of(user)`) add "3 days ago" to the narrative, measured from `now`
    (default: the latest timestamp). `deny` hides items (see `DenyList`).
    """
    if query is not None:
        if user is not None or history is not None:
            raise DataError("pass the user or history once: positionally or as user=/history=, not both")
        if isinstance(query, (str, int, np.integer)):  # a user id; a list (or array) of item ids is a history
            user = query
        else:
            history = query
    if (user is None) == (history is None):
        raise DataError("pass exactly one of user=... or history=[item ids, oldest first]")
    label = str(user) if user is not None else "history"
    options = dict(method=method, k=k, deny=deny, verb=verb, exclude_seen=exclude_seen, now=now)
    times = None if timestamps is None else {label: timestamps}
    if user is not None:
        return explain_batch(model, users=[user], items=[item], timestamps=times, **options)[0]
    return explain_batch(model, histories={label: history}, items=[item], timestamps=times, **options)[0]


def explain_batch(
    model: NextItemModel,
    users: Sequence[str] | None = None,
    histories: Mapping[str, Sequence[str]] | None = None,
    items: Sequence[str | None] | None = None,
    *,
    k: int = 5,
    method: str = DEFAULT_METHOD,
    timestamps: Mapping[str, Sequence[int]] | None = None,
    now: int | None = None,
    deny: DenyList | Sequence[str] | None = None,
    verb: str = DEFAULT_VERB,
    exclude_seen: bool = True,
    batch_size: int = 256,
) -> list[Explanation]:
    """Explanations for many known `users` or ad-hoc `histories` at once (batched forward passes).

    `items` lists, per user in order, the item to explain (None = that user's top recommendation).
    `timestamps` maps a user (or history label) to its times, aligned like in `explain`.
    """
    check_method(method)
    _check_explainable(model, method)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")
    if (users is None) == (histories is None):
        raise DataError("pass exactly one of users=[...] or histories={user: [items...]}")
    if users is not None:
        labels, seqs = model._known_users(users)
        given = None
    else:
        labels, seqs = model._adhoc_histories(histories)
        given = {str(u): [str(i) for i in h] for u, h in histories.items()}
    targets = _encode_targets(model, items, len(labels))
    deny = as_deny_list(deny)
    out = []
    for lo in range(0, len(labels), batch_size):
        rows = np.arange(lo, min(lo + batch_size, len(labels)))
        seq = torch.from_numpy(seqs.padded(rows, model.max_len))
        target = None if targets is None else torch.from_numpy(targets[rows])
        a = attribute(model.net_, seq, method, target, exclude_seen)
        scores, chosen, value, heads = a.scores, a.target, a.target_score, a.per_head
        for i, r in enumerate(rows):
            n = min(int(seqs.lengths[r]), model.max_len)
            label = str(labels[r])
            times = _timestamps(model, label, given, timestamps, seqs.lengths[r], users is not None)
            out.append(
                build_explanation(
                    model, label, seq[i, -n:].numpy(), scores[i, -n:].numpy(), int(chosen[i]), float(value[i]),
                    None if heads is None else heads[i, :, -n:].numpy(), method, k, times, now, deny, verb,
                )
            )  # fmt: skip
    return out


def timestamps_from_log(model: NextItemModel, log: InteractionLog, users: Sequence[str]) -> dict[str, list[int]]:
    """Times of each known user's stored history, read from the log it came from (the model keeps none).

    A user's stored history must be the start of their sequence in `log` (as after `leave_one_out`, whose
    train + valid the model remembers); users for whom it is not, or a log without times, get none.
    """
    if not log.has_time:
        return {}
    wanted = {str(u) for u in users}
    df = log.df[log.df[USER].isin(wanted)]
    out = {}
    for user, group in df.groupby(USER, sort=False):
        history = model.history_of(user)
        if group[ITEM].iloc[: len(history)].tolist() == history:
            out[str(user)] = group[TIME].iloc[: len(history)].astype(int).tolist()
    return out


def _check_explainable(model, method: str) -> None:
    if not hasattr(model, "net_"):
        if hasattr(model, "item_ids_"):
            raise DataError(f"{type(model).__name__} has no network to explain; explanations need SASRec")
        raise DataError(f"this {type(model).__name__} is not fitted yet; call fit(log) first")
    if method not in ("gradxinput", "occlusion") and not hasattr(model.net_, "blocks"):
        raise DataError(f"method {method!r} needs attention layers, which {type(model).__name__} does not have")


def _encode_targets(model, items: Sequence[str | None] | None, n: int) -> np.ndarray | None:
    """Internal indices of the items to explain (0 = the top recommendation), or None for all top."""
    if items is None or all(i is None for i in items):
        return None
    if isinstance(items, (str, bytes)) or len(items) != n:
        raise DataError(f"items must list one item id (or None) per user: {n} expected, got {items!r}")
    targets = np.zeros(n, dtype=np.int64)
    for r, item in enumerate(items):
        if item is None:
            continue
        index = int(model.encode_items([str(item)])[0])
        if index == 0:
            raise DataError(f"item {item!r} to explain is not known to the model")
        targets[r] = index
    return targets


def _timestamps(model, label, given, timestamps, length: int, known_user: bool) -> list[int] | None:
    """This row's timestamps aligned with the model's window (unknown items dropped, last max_len kept)."""
    if timestamps is None or label not in timestamps:
        return None
    times = [int(t) for t in timestamps[label]]
    if known_user:  # the stored history holds known items only
        expected = int(length)
        mask = np.ones(expected, dtype=bool)
    else:
        mask = model.encode_items(given[label]) > 0
        expected = len(given[label])
    if len(times) != expected:
        raise DataError(f"timestamps of {label!r}: {len(times)} given for a history of {expected} items")
    kept = [t for t, m in zip(times, mask) if m]
    return kept[-min(length, model.max_len) :]


def build_explanation(
    model, label, window, scores, target, value, per_head, method, k, times, now, deny: DenyList, verb
) -> Explanation:
    """An Explanation from attribution scores already computed (one per position of `window`).

    Public so a caller holding the weights of its own forward pass (the service) need not run the model
    again; shares, narrative and deny-list are applied exactly as in `explain`.
    """
    item_ids = [str(i) for i in model.decode_items(window)]
    hidden = np.array([i in deny for i in item_ids], dtype=bool)
    titles = model.item_titles_
    recommended = str(model.decode_items(np.array([target]))[0])
    shown_ids = [OTHER if h else i for i, h in zip(item_ids, hidden)]
    shown_titles = [OTHER if h else titles.get(i) for i, h in zip(item_ids, hidden)]
    shown_times = None if times is None else [None if h else t for t, h in zip(times, hidden)]
    shares = shares_of(scores)
    reference = now if now is not None else (max(times) if times else None)
    # the narrative names items, not positions: a repeated item is cited once (shares summed, latest time)
    named = np.flatnonzero(~hidden)
    items, first_seen, which = np.unique(window[named][::-1], return_index=True, return_inverse=True)
    summed = np.bincount(which, weights=shares[named][::-1], minlength=len(items))
    latest = named[::-1][first_seen]  # the reversed window sees each item's latest position first
    cited = []
    for u in np.argsort(-summed, kind="stable")[:k]:
        share = float(summed[u])
        if share <= 0 or (cited and share < MIN_SHARE):
            break
        age = None if times is None or reference is None else reference - times[latest[u]]
        cited.append(Citation(titles.get(item_ids[latest[u]], item_ids[latest[u]]), share, age))
    return Explanation(
        recommended=recommended,
        recommended_title=titles.get(recommended),
        score=value,
        method=method,
        items=shown_ids,
        titles=shown_titles,
        scores=scores.astype(np.float64),
        narrative=narrative(titles.get(recommended, recommended), cited, float(shares[hidden].sum()), verb),
        timestamps=shown_times,
        user=label,
        per_head=per_head,
        hidden=hidden,
        target_agnostic=method in TARGET_AGNOSTIC,
    )
