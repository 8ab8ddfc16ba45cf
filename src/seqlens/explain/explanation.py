"""`Explanation` and the functions that make it: `explain(model, ...)` and `explain_batch(model, ...)`.

An explanation covers the window of history the model reads (the last `max_len` items, oldest first):
one score per position, in that order, plus ids, titles and timestamps: the caller's (`timestamps=`), else,
for a known user, those the model stored with the history (models fitted on a log with times, since
seqlens keeps them); without any the narrative simply gives no ages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqlens.data.log import ITEM, TIME, USER, InteractionLog
from seqlens.data.sequences import UNKNOWN_TIME, Sequences
from seqlens.errors import DataError
from seqlens.eval.protocol import exclude_histories, top_k_items
from seqlens.explain.attributions import attribute, check_method, masked_states, supports
from seqlens.explain.methods import DEFAULT_METHOD, SIGNED, TARGET_AGNOSTIC
from seqlens.explain.narrative import DEFAULT_VERB, MIN_SHARE, Citation, narrative
from seqlens.explain.privacy import OTHER, DenyList, as_deny_list

if TYPE_CHECKING:  # annotations only: explain reads fitted models, it does not build them
    from seqlens.recommenders.neural import NextItemModel


@dataclass
class Explanation:
    """Why `recommended` was scored as it was, by `method`: one score per history position, oldest first.

    `items`, `titles`, `timestamps` and `scores` are aligned with the history window the model read.
    Deny-listed positions show `OTHER` as id and title (and no time); their summed share is `other_share`.
    `signed` methods give each item's effect on the score (negative: it counted against the item, and it is
    never cited as a reason); unsigned ones show where the model looked. Attention-based methods
    (`target_agnostic`) give the same scores whichever item is explained.
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
    signed: bool = True

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
            "signed": self.signed,
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
    user_attributes: Mapping[str, str] | None = None,
    context: Mapping[str, str] | None = None,
) -> Explanation:
    """Explain one recommendation: `item` (default: the top one) for a known `user` or an ad-hoc `history`.

    `query` is a shortcut: a string is a user id, a list of item ids a history. `k` bounds how many items
    the narrative cites (items under 5% are not cited). `timestamps` (seconds, aligned with the history
    as given, or with `model.history_of(user)`) add "3 days ago" to the narrative, measured from `now`
    (default: the latest timestamp); a history's are also what a model that reads time takes in. `deny`
    hides items (see `DenyList`). `user_attributes` (column -> value) go with a history, for a model that reads
    them (a known user's are stored); `context` (column -> value) is the request's, for a model that reads it.
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
    users = None if user is None else [str(user)]
    histories = None if history is None else {label: history}
    return explain_batch(
        model, users, histories, [item], method=method, k=k, deny=deny, verb=verb, exclude_seen=exclude_seen,
        now=now, timestamps=None if timestamps is None else {label: timestamps},
        user_attributes=None if user_attributes is None else {label: user_attributes},
        context=None if context is None else {label: context},
    )[0]  # fmt: skip


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
    user_attributes: Mapping[str, Mapping[str, str]] | None = None,
    context: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Explanation]:
    """Explanations for many known `users` or ad-hoc `histories` at once (batched forward passes).

    `items` lists, per user in order, the item to explain (None = that user's top recommendation).
    `timestamps` maps a user (or history label) to its times, aligned like in `explain`; `user_attributes` maps
    a history label to its user attributes, and `context` a user or label to its request's context.
    """
    check_method(method)
    _check_explainable(model, method)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")
    # an ad-hoc history's timestamps are also what a model that reads time takes in (a known user's are stored)
    labels, seqs = model.encoded_histories(
        users, histories, None if histories is None else timestamps, user_attributes, context
    )
    given = None if histories is None else {str(u): [str(i) for i in h] for u, h in histories.items()}
    wanted = encode_targets(model, items, len(labels))
    deny = as_deny_list(deny)
    out = []
    for lo in range(0, len(labels), batch_size):
        rows = np.arange(lo, min(lo + batch_size, len(labels)))
        seq, times = model.padded_inputs(seqs, rows)
        # masking's pass holds the state the top item is scored from: it spares recommending a second pass
        masked = masked_states(model.net_, seq, times) if method == "masking" else None
        # what user attributes and context add to the state items are scored from (a model that reads them): the
        # same whatever the history, so no history position's attribution changes, but the item's score does
        query = model.query_vectors(seqs, rows)  # [B, D] or None
        states = None if masked is None else masked.states[:, -1] if query is None else masked.states[:, -1] + query
        targets = recommended_items(
            model, seqs.subset(rows), None if wanted is None else wanted[rows], exclude_seen, states=states
        )
        a = attribute(model.net_, seq, method, torch.from_numpy(targets), masked=masked, times=times)
        score = a.target_score if query is None else a.target_score + query_part(model, query, a.target)
        for i, r in enumerate(rows):
            n = min(int(seqs.lengths[r]), model.max_len)
            label = str(labels[r])
            out.append(
                build_explanation(
                    model,
                    label=label,
                    window=seq[i, -n:].numpy(),
                    scores=a.scores[i, -n:].numpy(),
                    target=int(a.target[i]),
                    value=float(score[i]),
                    per_head=None if a.per_head is None else a.per_head[i, :, -n:].numpy(),
                    method=method,
                    k=k,
                    times=_timestamps(model, label, given, timestamps, seqs.lengths[r], users is not None)
                    or _stored_times(seqs, r, n),
                    now=now,
                    deny=deny,
                    verb=verb,
                )
            )
    return out


def query_part(model: NextItemModel, query: Tensor, items: Tensor) -> Tensor:
    """[B]: what the users' attributes and the requests' context (their `query_vectors`, [B, D]) add to the score of
    `items` [B]: the dot product of the two."""
    with torch.inference_mode():
        return (query * model.net_.item_vectors(items)).sum(-1)


#: a top item read from a caller's state must lead the runner-up by this much (relative to its score): far above
#: the float error between that state and `recommend`'s own pass, so both name the same item
CLEAR_LEAD = 1e-4


def recommended_items(
    model: NextItemModel,
    histories: Sequences,
    targets: np.ndarray | None = None,
    exclude_seen: bool = True,
    states: Tensor | None = None,
) -> np.ndarray:
    """The internal index of the item to explain per history: `targets` where given (> 0), else the top item
    exactly as `recommend` ranks it (the whole history excluded, not only the window the model reads).

    `states` [n, D], each history's last hidden state when the caller has computed it, spare a forward pass:
    a top item leading clearly (`CLEAR_LEAD`) is read from them, the others ranked as `recommend` does.
    """
    out = np.zeros(len(histories), dtype=np.int64) if targets is None else targets.copy()
    todo = np.flatnonzero(out == 0)
    if len(todo) and states is not None:
        with torch.inference_mode():
            scores = model.net_.scores(states[torch.from_numpy(todo)])  # [n, n_items + 1]
            if exclude_seen:
                scores = exclude_histories(scores, histories, todo)
            top = scores.topk(min(2, scores.shape[1]), dim=1)
        lead = top.values[:, 0] - (top.values[:, 1] if top.values.shape[1] > 1 else float("-inf"))
        clear = ((lead > CLEAR_LEAD * (1 + top.values[:, 0].abs())) & (top.values[:, 0] > float("-inf"))).numpy()
        out[todo[clear]] = top.indices[clear, 0].numpy()
        todo = todo[~clear]
    if len(todo):
        subset = histories.subset(todo)
        out[todo] = top_k_items(model, subset, 1, exclude_seen)[:, 0]
    if (out == 0).any():
        raise DataError("no item is left to recommend after excluding the history; nothing to explain")
    return out


def timestamps_from_log(model: NextItemModel, log: InteractionLog, users: Sequence[str]) -> dict[str, list[int]]:
    """Times of each known user's stored history, read from the log it came from (for models saved before
    seqlens kept them with the histories).

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
    if not supports(model.net_, method):
        raise DataError(f"method {method!r} needs attention layers, which {type(model).__name__} does not have")


def encode_targets(model, items: Sequence[str | None] | None, n: int) -> np.ndarray | None:
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


def _stored_times(seqs: Sequences, row: int | np.integer, n: int) -> list[int] | None:
    """The last `n` timestamps of history `row` (stored with a known user's, or given with an ad-hoc one)."""
    times = seqs.times_of(int(row))
    return None if times is None else known_times(times[-n:])


def known_times(times: np.ndarray | None) -> list[int] | None:
    """`times` as a narrative's ages read them: None unless every one is known (a history given without times
    beside timed ones holds `UNKNOWN_TIME`: no ages rather than wrong ones)."""
    if times is None or (np.asarray(times) == UNKNOWN_TIME).any():
        return None
    return [int(t) for t in times]


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
    model: NextItemModel,
    *,
    label: str,
    window: np.ndarray,
    scores: np.ndarray,
    target: int,
    value: float,
    method: str,
    per_head: np.ndarray | None = None,
    k: int = 5,
    times: Sequence[int] | None = None,
    now: int | None = None,
    deny: DenyList | None = None,
    verb: str = DEFAULT_VERB,
) -> Explanation:
    """An Explanation of item `target` (internal index, scored `value`) from attribution `scores`, one per
    position of `window` (internal indices the model read, oldest first): names, shares, narrative, deny-list.

    Public so a caller holding the attributions of its own pass (the service) builds the same Explanation.
    """
    deny = deny if deny is not None else DenyList()
    item_ids = [str(i) for i in model.decode_items(window)]
    hidden = np.array([i in deny for i in item_ids], dtype=bool)
    titles = model.item_titles_
    recommended = str(model.decode_items(np.array([target]))[0])
    shown_ids = [OTHER if h else i for i, h in zip(item_ids, hidden)]
    shown_titles = [OTHER if h else titles.get(i) for i, h in zip(item_ids, hidden)]
    shown_times = None if times is None else [None if h else t for t, h in zip(times, hidden)]
    scores = np.asarray(scores, dtype=np.float64)
    shares = shares_of(scores)
    reference = now if now is not None else (max(times) if times else None)

    def citation(position: int, share: float) -> Citation:
        age = None if times is None or reference is None else reference - times[position]
        return Citation(titles.get(item_ids[position], item_ids[position]), share, age)

    # the narrative names items, not positions: a repeated item counts once (scores summed, latest time)
    named = np.flatnonzero(~hidden)
    items, first_seen, which = np.unique(window[named][::-1], return_index=True, return_inverse=True)
    summed = np.bincount(which, weights=scores[named][::-1], minlength=len(items))
    latest = named[::-1][first_seen]  # the reversed window sees each item's latest position first
    positive = np.clip(scores, 0.0, None).sum()
    cited: list[Citation] = []
    for u in np.argsort(-summed, kind="stable")[:k]:
        share = float(summed[u] / positive) if positive > 0 else 0.0
        if share <= 0 or (cited and share < MIN_SHARE):
            break
        cited.append(citation(int(latest[u]), share))
    signed = method in SIGNED
    against = None
    if signed and len(summed) and positive > 0:
        worst = int(np.argmin(summed))  # the item that lowered the score most, named when it weighs enough
        if -summed[worst] >= MIN_SHARE * positive:
            against = citation(int(latest[worst]), float(-summed[worst] / positive))
    return Explanation(
        recommended=recommended,
        recommended_title=titles.get(recommended),
        score=value,
        method=method,
        items=shown_ids,
        titles=shown_titles,
        scores=scores,
        narrative=narrative(
            titles.get(recommended, recommended), cited, float(shares[hidden].sum()), verb, signed, against
        ),
        timestamps=shown_times,
        user=label,
        per_head=per_head,
        hidden=hidden,
        target_agnostic=method in TARGET_AGNOSTIC,
        signed=signed,
    )
