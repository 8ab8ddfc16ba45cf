"""A log replayed as the requests a deployed model would have answered, and what the model did with each.

Every event of a log is a request: the user's history just before it, at the event's time. Replaying a log
through a model (`answer`) gives, per request, the attention statistics of the last query in every layer
(`last_query_stats`), the items it recommended, how many of them change when the history is read backwards
(`order_sensitivity`), and the last layer's attention mass per history item: what
`windows.summarize` aggregates per time window and `drift` compares with a reference.

Requests are built apart from answering them (`requests_from_log`, then `answer`) so that a test or a
benchmark can alter them in between (a promoted brand appended to some histories, histories cut short by a
broken upstream) exactly as a fault in production would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqlens.data.log import ITEM, TIME, USER, InteractionLog
from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.eval.protocol import exclude_histories
from seqlens.monitor.attention_stats import STATISTICS, applied_weights, last_query_stats
from seqlens.nn.masking import time_kwargs
from seqlens.recommenders import Recommender
from seqlens.recommenders.neural import NextItemModel

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: requests of one user per window at most (None: no cap). A cap of 10 made the MovieLens-100K replay, where
#: the rules were chosen, raise more false alarms (5 of 69 windows against 0): windows got smaller and noisier
PER_USER: int | None = None


@dataclass(frozen=True)
class Requests:
    """Histories (internal item indices of the model, oldest first, unknown items dropped) at times (seconds), and
    what a model may read besides the items: the histories' own timestamps where known, and each request's user
    attribute and context codes (a model that reads them; None: unknown)."""

    times: np.ndarray  # [N] int64
    users: np.ndarray  # [N] str
    histories: list[np.ndarray]
    history_times: list[np.ndarray | None] | None = None
    user_codes: np.ndarray | None = None  # [N, columns]
    context_codes: np.ndarray | None = None  # [N, columns]

    @classmethod
    def of(cls, histories: Sequences, users: np.ndarray) -> Requests:
        """One request per history of `histories` (with their stored times and codes), labelled by `users`, all at
        time 0."""
        n = len(histories)
        return cls(np.zeros(n, np.int64), np.asarray(users).astype(str), [histories[i] for i in range(n)],
                   [histories.times_of(i) for i in range(n)], histories.user_codes, histories.context_codes)  # fmt: skip

    def __len__(self) -> int:
        return len(self.times)

    def where(self, rows: np.ndarray) -> Requests:
        """The requests at `rows` (a boolean mask or indices), in order."""
        picked = np.flatnonzero(rows) if rows.dtype == bool else rows
        times = None if self.history_times is None else [self.history_times[i] for i in picked]
        users = None if self.user_codes is None else self.user_codes[picked]
        context = None if self.context_codes is None else self.context_codes[picked]
        return Requests(
            self.times[picked], self.users[picked], [self.histories[i] for i in picked], times, users, context
        )


def window_starts(times: np.ndarray, window: str) -> np.ndarray:
    """The start (seconds) of the window each time falls in; windows of length `window` ("7d", "12h", "2w")
    counted from the epoch, so the same time always lands in the same window."""
    return (np.asarray(times, dtype=np.int64) // window_seconds(window)) * window_seconds(window)


def window_seconds(window: str) -> int:
    """Seconds in a window written as a whole number and a unit: s, m, h, d or w ("7d", "12h")."""
    found = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", window)
    if found is None or int(found[1]) == 0:
        raise DataError(f"window={window!r} is not a duration: a whole number above zero and s, m, h, d or w (7d, 12h)")
    return int(found[1]) * UNIT_SECONDS[found[2]]


def requests_from_log(
    model: Recommender,
    log: InteractionLog,
    window: str = "7d",
    per_window: int | None = 1000,
    seed: int = 0,
    per_user: int | None = PER_USER,
) -> Requests:
    """Every event with a non-empty known history before it is a request; at most `per_window` per window
    (so that windows of very different traffic weigh alike) and, if given, `per_user` of one user's (so that a
    window describes many users, not the bulk import of one: in MovieLens-1M one user often holds a third of a
    week's events), drawn uniformly with `seed`."""
    if not log.has_time:
        raise DataError(f"{log.source}: the log has no times, so it cannot be replayed in windows")
    df = log.df  # sorted by user, then time
    items = model.encode_items(df[ITEM].astype(str))  # 0 = unknown to the model
    users = df[USER].to_numpy()
    times = df[TIME].to_numpy(np.int64)
    first = np.r_[True, users[1:] != users[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(df)), 0))  # the row where each user begins
    candidates = np.random.default_rng(seed).permutation(np.flatnonzero(~first))
    windows = window_starts(times[candidates], window)
    if per_user is not None:  # order of each request among its user's in its window
        rank = pd.Series(windows).groupby([windows, users[candidates]]).cumcount().to_numpy()
        candidates, windows = candidates[rank < per_user], windows[rank < per_user]
    if per_window is not None:  # order of each request in its window
        rank = pd.Series(windows).groupby(windows).cumcount().to_numpy()
        candidates = candidates[rank < per_window]
    candidates = np.sort(candidates)
    histories = [items[start[r] : r][items[start[r] : r] > 0] for r in candidates]
    history_times = [times[start[r] : r][items[start[r] : r] > 0] for r in candidates]
    known = np.array([len(h) > 0 for h in histories], dtype=bool)
    # what a model may read besides the items: the users' stored attributes, each event's own context
    user_codes = model.user_codes_for(users[candidates].astype(str))
    context_codes = model.event_context_codes(df.iloc[candidates])
    return Requests(
        times[candidates], users[candidates].astype(str), histories, history_times, user_codes, context_codes
    ).where(known)


@dataclass(frozen=True)
class Answers:
    """What the model did with each request: `records` (one row per request: time, user, history length, the
    per-layer statistics and, in a replay, `order_sensitivity`), `recommended` [N, k] internal indices, the
    last layer's attention mass per history item as a flat list (`attended_items`, `attended_mass`, request
    `attended_row`), each request's `latest` item (0 when not known), and `shares`: per-request distributions
    computed when the request was served (the service's request log records the attention per popularity
    bucket instead of the history's items)."""

    records: pd.DataFrame
    recommended: np.ndarray
    attended_items: np.ndarray
    attended_mass: np.ndarray
    attended_row: np.ndarray
    layers: int
    latest: np.ndarray  # [N] the most recent history item of each request
    shares: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [N, bins]

    def where(self, keep: np.ndarray) -> Answers:
        """The answers to the requests where `keep` [N] is True (rows renumbered)."""
        renumber = np.cumsum(keep) - 1
        attended = keep[self.attended_row]
        return Answers(
            self.records[keep].reset_index(drop=True), self.recommended[keep], self.attended_items[attended],
            self.attended_mass[attended], renumber[self.attended_row[attended]], self.layers, self.latest[keep],
            {name: rows[keep] for name, rows in self.shares.items()},
        )  # fmt: skip


#: a per-request statistic of the replay besides the attention's: the share of the top k that changes when the
#: history's items are read in reverse order (`order_sensitivity`)
ORDER = "order_sensitivity"


def answer(model: Recommender, requests: Requests, k: int = 10, batch_size: int = 256) -> Answers:
    """Run `model` on every request (its most recent `max_len` items), recording what `Answers` holds.

    Recommendations exclude the history, as `recommend` does. Needs an attention network (SASRec).

    `order_sensitivity`: the share of the k recommendations that change when the items the model reads are
    given in reverse order (their times, user and context left as they were). A model that reads the order
    (the latest item first of all) changes most of its list; one that has lost the order (trained on shuffled
    sequences, a broken pipeline) changes little, while its attention can look as it did. It costs a second
    pass per request, so only a replay records it, not the service.
    """
    if not (isinstance(model, NextItemModel) and model.net_.has_attention):
        raise DataError(f"{type(model).__name__} has no attention to monitor (use an attention model such as SASRec)")
    net, max_len = model.net_, model.max_len
    if len(requests) == 0:
        raise DataError("no requests to replay (no event has a history the model knows)")
    seqs = Sequences.from_lists(requests.histories, requests.history_times)
    seqs = replace(seqs, user_codes=requests.user_codes, context_codes=requests.context_codes)
    columns: dict[str, list[np.ndarray]] = {}
    recommended, att_items, att_mass, att_row = [], [], [], []
    layers = 0
    with torch.inference_mode():
        for lo in range(0, len(seqs), batch_size):
            rows = np.arange(lo, min(lo + batch_size, len(seqs)))
            seq, times = model.padded_inputs(seqs, rows)  # [B, T] each
            hidden, weights = net(seq, return_attention=True, **time_kwargs(times))
            scores = exclude_histories(net.scores(model.with_query(hidden[:, -1], seqs, rows)), seqs, rows)  # [B, n+1]
            top = scores.topk(k, dim=1).indices
            recommended.append(top.numpy())
            flipped = net(reversed_items(seq), **time_kwargs(times))[0][:, -1]
            flipped_top = exclude_histories(net.scores(model.with_query(flipped, seqs, rows)), seqs, rows).topk(
                k, dim=1
            )
            kept = (top[:, :, None] == flipped_top.indices[:, None, :]).any(2).sum(1)  # [B]
            columns.setdefault(ORDER, []).append(1.0 - kept.numpy() / top.shape[1])
            keep = seq != 0
            stats = last_query_stats(weights, keep)
            layers = stats.layers
            values = stats.by_name()
            for name in STATISTICS:
                for layer in range(layers):
                    columns.setdefault(f"{name}@{layer}", []).append(values[name][:, layer].numpy())
            last = applied_weights(weights[-1])[:, :, -1, :].mean(1)  # [B, T]: head mean of the last query
            b_idx, t_idx = keep.nonzero(as_tuple=True)
            att_items.append(seq[b_idx, t_idx].numpy())
            att_mass.append(last[b_idx, t_idx].numpy())
            att_row.append(rows[b_idx.numpy()])
    records = pd.DataFrame(
        {
            TIME: requests.times,
            USER: requests.users,
            "length": np.minimum(seqs.lengths, max_len),
            **{name: np.concatenate(parts) for name, parts in columns.items()},
        }  # fmt: skip
    )
    return Answers(
        records, np.concatenate(recommended), np.concatenate(att_items), np.concatenate(att_mass),
        np.concatenate(att_row), layers, np.array([h[-1] for h in requests.histories], dtype=np.int64),
    )  # fmt: skip


def reversed_items(seq: Tensor) -> Tensor:
    """Left-padded histories [B, T] with their items in reverse order (still right-aligned: the oldest item last)."""
    t = seq.shape[1]
    n = (seq != 0).sum(1, keepdim=True)  # [B, 1]
    columns = torch.arange(t)[None, :]
    source = (2 * t - 1 - n - columns).clamp(0, t - 1)  # column c of the real part reads column 2T-1-n-c
    return torch.where(columns >= t - n, seq.gather(1, source), torch.zeros_like(seq))
