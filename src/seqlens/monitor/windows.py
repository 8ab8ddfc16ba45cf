"""Per-window statistics of a model's answers: what the drift checks compare with a reference.

Two kinds, both one row per window (indexed by the window's start, seconds):
- `scalars`: means of the per-request attention statistics per layer (entropy, normalised entropy, top-1
  mass, mass on the latest item, age of the attended items), the mean history length, how concentrated the
  last layer's attention is over the catalogue (`attention_hhi`: Herfindahl index of the attention mass per
  item; 1 / HHI is the effective number of attended items), catalogue `coverage` of the recommendations and,
  in a replay, `order_sensitivity` (`replay.answer`);
- `distributions`: shares that sum to one per window: the last layer's normalised entropy and latest-item
  mass in ten bins of [0, 1]; per popularity bucket (items in five buckets of equal interaction mass, head
  first) the attention mass, the recommendation exposure and the requests' latest items; and the same three
  per value of an item attribute when an `ItemTable` is given (its most frequent values, the rest pooled
  as "other"). The latest items show what the requests bring (a promoted brand shows there first), the
  attention what the model makes of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqlens.data.items import ItemTable
from seqlens.data.log import ITEM
from seqlens.data.users import UserTable
from seqlens.errors import DataError
from seqlens.monitor.replay import Answers, window_starts
from seqlens.recommenders import Recommender

BINS = 10
#: windows with fewer requests are left out: their means are too noisy to compare
MIN_REQUESTS = 100
#: the first this many windows are the reference
REFERENCE_WINDOWS = 8
#: history-length buckets of the standardisation (equal shares of all requests)
LENGTH_BUCKETS = 5
POPULARITY_BUCKETS = 5
#: attribute values tracked one by one; the rest are pooled
TOP_VALUES = 10
OTHER = "other"


@dataclass(frozen=True)
class Windows:
    """Statistics per window: `scalars` [windows x statistics], `distributions` name -> [windows x bins], and
    the starts of the `reference` windows (the first ones), which the drift checks compare with."""

    scalars: pd.DataFrame
    distributions: dict[str, pd.DataFrame]
    window: str
    reference: list[int]

    def __len__(self) -> int:
        return len(self.scalars)


def popularity_buckets(model: Recommender, buckets: int = POPULARITY_BUCKETS) -> np.ndarray:
    """Bucket [n_items + 1] of every internal item index: 0 = the head items that hold the first 1 / `buckets`
    of the interactions in the model's stored histories, ..., `buckets` - 1 = the tail (and unseen items)."""
    counts = model.history_counts().astype(np.float64)
    order = np.argsort(-counts, kind="stable")
    cumulative = np.cumsum(counts[order]) / max(counts.sum(), 1.0)
    bucket = np.empty(len(counts), dtype=np.int64)
    bucket[order] = np.minimum((cumulative * buckets - 1e-9).astype(np.int64).clip(min=0), buckets - 1)
    return bucket


def cohort_labels(answers: Answers, by: str, users: UserTable | None = None) -> np.ndarray:
    """Each request's cohort: by "length", short / medium / long histories (terciles of the requests' history
    lengths); otherwise the `by` column of a user table (users it does not hold: "unknown")."""
    if by == "length":
        lengths = answers.records["length"].to_numpy()
        low, high = np.quantile(lengths, [1 / 3, 2 / 3])
        return np.where(
            lengths <= low, f"short (<= {low:g})", np.where(lengths <= high, "medium", f"long (> {high:g})")
        )
    if users is None:
        raise DataError(f"cohort {by!r} is a user attribute: give the user table too (or use 'length')")
    return np.array(users.values_of(answers.records["user_id"].tolist(), by))


def attribute_values(model: Recommender, table: ItemTable, column: str) -> tuple[list[str], list[list[int]]]:
    """(tracked values, for every internal item index the positions of its values among them): the
    `TOP_VALUES` values most frequent in the model's histories, then `OTHER`."""
    values = table.frame.set_index(ITEM)[column].reindex([str(i) for i in model.item_ids_])
    per_item = [() if not isinstance(v, tuple | str) else (v if isinstance(v, tuple) else (v,)) for v in values]
    counts = model.history_counts()
    frequency: dict[str, int] = {}
    for j, vs in enumerate(per_item, start=1):
        for v in vs:
            frequency[v] = frequency.get(v, 0) + int(counts[j])
    tracked = sorted(frequency, key=lambda v: (-frequency[v], v))[:TOP_VALUES]
    position = {v: i for i, v in enumerate(tracked)}
    slots = [[len(tracked)]] + [[position.get(v, len(tracked)) for v in vs] or [len(tracked)] for vs in per_item]
    return [*tracked, OTHER], slots


def summarize(
    model: Recommender,
    answers: Answers,
    window: str = "7d",
    attributes: ItemTable | None = None,
    attribute: str | None = None,
    min_requests: int = MIN_REQUESTS,
    reference: int = REFERENCE_WINDOWS,
    standardize: bool = True,
) -> Windows:
    """The statistics of every window with at least `min_requests` requests (see the module docstring); the
    first `reference` of them are the reference.

    With `standardize`, every statistic but `length` is computed as if each window had the history-length
    mix of the reference windows (`length_weights`): attention spreads wider over longer histories, so a week
    of longer histories would otherwise look like a change of the model. `length` itself shows the mix.
    """
    if (attributes is None) != (attribute is None):
        raise DataError("give both attributes (an ItemTable) and attribute (one of its columns), or neither")
    starts = window_starts(answers.records["timestamp"].to_numpy(), window)
    order, index, counts = np.unique(starts, return_inverse=True, return_counts=True)
    busy = counts >= min_requests
    if not busy.any():
        raise DataError(f"no {window} window has {min_requests} requests (the busiest has {counts.max()})")
    answers = answers.where(busy[index])
    records = answers.records
    order, index = np.unique(starts[busy[index]], return_inverse=True)  # window number of every request
    last = answers.layers - 1
    if reference < 3 or reference >= len(order):
        raise DataError(
            f"{len(order)} {window} windows have {min_requests} requests: too few for a reference of {reference} "
            "windows (at least 3) and one window to compare"
        )
    lengths = records["length"].to_numpy()
    weight = length_weights(lengths, index, index < reference) if standardize else np.ones(len(records))
    stats = records.drop(columns=["timestamp", "user_id"])
    totals = np.bincount(index, weight)
    scalars = pd.DataFrame(
        {name: np.bincount(index, weight * stats[name].to_numpy(np.float64)) / totals for name in stats.columns}
    )
    scalars["length"] = pd.Series(records["length"].to_numpy(np.float64)).groupby(index).mean()  # as it came
    scalars.insert(0, "requests", np.bincount(index))
    attended = len(answers.attended_items) > 0  # a replay knows the attended items; the request log does not
    shape, rows = (len(order), model.n_items_ + 1), answers.attended_row
    mass = _per_item(shape, index[rows], answers.attended_items, answers.attended_mass * weight[rows])
    if attended:
        scalars["attention_hhi"] = ((mass / mass.sum(1, keepdims=True)) ** 2).sum(1)
    k = answers.recommended.shape[1]
    shown = answers.recommended.ravel()
    exposure = _per_item(shape, np.repeat(index, k), shown, np.repeat(weight, k) * (shown > 0))
    scalars["coverage"] = (exposure[:, 1:] > 0).sum(1) / model.n_items_
    scalars.index = pd.Index(order, name="start")

    distributions = {
        name: _histogram(records[f"{name}@{last}"].to_numpy(), weight, index, len(order), order)
        for name in ("normalized_entropy", "last_mass")
    }
    bucket = [[b] for b in popularity_buckets(model)]
    latest = _per_item(shape, index, answers.latest, weight * (answers.latest > 0))
    amounts = {"exposure": exposure, **({"attention": mass} if attended else {}),
               **({"latest": latest} if (answers.latest > 0).any() else {})}  # fmt: skip
    for name, per_item in amounts.items():
        distributions[f"{name}_by_popularity"] = _pooled(per_item, bucket, POPULARITY_BUCKETS, order)
    if attributes is not None and attribute is not None:
        names, slots = attribute_values(model, attributes, attribute)
        for name, per_item in amounts.items():
            distributions[f"{name}_by_{attribute}"] = _pooled(per_item, slots, len(names), order, names)
    for name, per_request in answers.shares.items():  # shares recorded per request: weighted means per window
        bins = per_request.shape[1]
        summed = np.stack([np.bincount(index, weight * per_request[:, j], len(order)) for j in range(bins)], 1)
        columns = [f"bucket {b}" for b in range(bins)]
        distributions[name] = pd.DataFrame(summed / summed.sum(1, keepdims=True), index=scalars.index, columns=columns)
    return Windows(scalars, distributions, window, [int(s) for s in order[:reference]])


def _per_item(shape: tuple[int, int], window: np.ndarray, items: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """[windows, catalogue] sums of `amounts` per (window, item)."""
    out = np.zeros(shape)
    np.add.at(out, (window, items), amounts)
    return out


def length_weights(
    lengths: np.ndarray, window: np.ndarray, standard: np.ndarray, buckets: int = LENGTH_BUCKETS
) -> np.ndarray:
    """Per-request weights that give every window the history-length mix of the `standard` requests (direct
    standardisation over length buckets, of equal size among them): the bucket's share among the standard
    requests / its share in the window."""
    edges = np.unique(np.quantile(lengths[standard], np.linspace(0, 1, buckets + 1)[1:-1]))
    bucket = np.searchsorted(edges, lengths, side="right")
    overall = np.bincount(bucket[standard], minlength=len(edges) + 1) / standard.sum()
    cell = window * (len(edges) + 1) + bucket
    per_cell = np.bincount(cell, minlength=int(cell.max()) + 1)
    per_window = np.bincount(window)
    return overall[bucket] / (per_cell[cell] / per_window[window])


def _histogram(
    values: np.ndarray, weight: np.ndarray, window: np.ndarray, n_windows: int, order: np.ndarray
) -> pd.DataFrame:
    """Weighted shares of each window's requests in `BINS` equal bins of [0, 1]."""
    bins = np.clip((values * BINS).astype(np.int64), 0, BINS - 1)
    counts = np.zeros((n_windows, BINS))
    np.add.at(counts, (window, bins), weight)
    labels = [f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}" for i in range(BINS)]
    return pd.DataFrame(counts / counts.sum(1, keepdims=True), index=pd.Index(order, name="start"), columns=labels)


def pooling_matrix(slots: list[list[int]], n_slots: int) -> np.ndarray:
    """[items, slots]: row j spreads item j evenly over its slots (an item with several values counts 1/n each)."""
    pooling = np.zeros((len(slots), n_slots))
    for item, item_slots in enumerate(slots):
        for slot in item_slots:
            pooling[item, slot] += 1.0 / len(item_slots)
    return pooling


def _pooled(
    per_item: np.ndarray, slots: list[list[int]], n_slots: int, order: np.ndarray, names: list[str] | None = None
) -> pd.DataFrame:
    """Each window's per-item amounts [windows, items] pooled into slots (an item's amount split evenly over
    its slots), as shares per window."""
    pooled = per_item @ pooling_matrix(slots, n_slots)
    total = pooled.sum(1, keepdims=True)
    columns = names or [f"bucket {b}" for b in range(n_slots)]
    return pd.DataFrame(pooled / np.where(total > 0, total, 1.0), index=pd.Index(order, name="start"), columns=columns)
