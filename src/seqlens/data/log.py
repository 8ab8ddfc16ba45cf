"""InteractionLog: who interacted with what, when, in order; the one input type of every model. Also
ItemTable and UserTable, the item and user attributes a log may hold (read by items.py and users.py).

Columns follow RecTools' conventions: `user_id`, `item_id`, `timestamp` (optional, integer seconds).
External ids are kept as strings so that `1193` read from a file and `"1193"` typed by a user agree.
Rows are kept sorted by user, then time; rows with equal timestamps keep the order they were given in
(Amazon data has day-resolution timestamps, so within-day order is the file's order).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from seqlens.errors import DataError

USER, ITEM, TIME = "user_id", "item_id", "timestamp"
#: the largest number of seconds accepted as a time: beyond it a float no longer holds whole seconds exactly
MAX_SECONDS = 2**53
DATETIME = "datetime"  # RecTools' name for the time column, read as TIME when TIME is absent


@dataclass(frozen=True, eq=False)
class InteractionLog:
    """An ordered interaction log plus optional item metadata (a `title` column and attributes).

    Build one with `seqlens.read_interactions` or `InteractionLog.from_frame`; it is immutable, and every
    operation (filtering, splitting, concatenating) returns a new log.
    """

    df: pd.DataFrame
    items: pd.DataFrame | None = None
    source: str = "<dataframe>"
    attributes: ItemTable | None = None  # typed item attributes (`with_items`), kept by every operation
    user_table: UserTable | None = None  # user attributes (`with_users`), kept by every operation

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        items: pd.DataFrame | None = None,
        source: str = "<dataframe>",
        context: Iterable[str] = (),
    ) -> InteractionLog:
        """Normalise ids to strings, check the columns, and sort by user then time (stable); `context` names
        per-event columns kept as strings (device, channel)."""
        missing = [c for c in (USER, ITEM) if c not in df.columns]
        if missing:
            raise DataError(
                f"{source}: missing column {missing[0]!r} (columns present: {', '.join(map(str, df.columns))})"
            )
        if len(df) == 0:
            raise DataError(f"{source}: no interactions (the file or frame is empty)")
        time_column = TIME if TIME in df.columns else DATETIME if DATETIME in df.columns else None
        ignored = [str(c) for c in df.columns if c not in (USER, ITEM, time_column) and _looks_like_time(df[c])]
        if ignored:
            warnings.warn(
                f"{source}: column(s) {', '.join(map(repr, ignored))} look like times but are ignored; seqlens orders "
                f"each user's interactions by {TIME!r} (or RecTools' {DATETIME!r}) and else keeps the given order",
                stacklevel=2,
            )
        out = pd.DataFrame({USER: df[USER].to_numpy(), ITEM: df[ITEM].to_numpy()})
        if time_column is not None:
            out[TIME] = _seconds(df[time_column], source, time_column)
        context = list(context)
        absent = [c for c in context if c not in df.columns]
        if absent:
            raise DataError(f"{source}: missing context column {absent[0]!r}")
        for c in context:
            out[c] = df[c].to_numpy()
        for c in (USER, ITEM, *context):
            if out[c].isna().any():
                row = int(np.flatnonzero(out[c].isna().to_numpy())[0])
                raise DataError(f"{source}: row {row + 1}, column {c!r}: empty value")
            out[c] = out[c].astype(str)
        order = ["_user", TIME, "_row"] if TIME in out.columns else ["_user", "_row"]
        out["_user"] = pd.factorize(out[USER], sort=True)[0]
        out["_row"] = np.arange(len(out))
        out = out.sort_values(order, kind="stable").drop(columns=["_user", "_row"]).reset_index(drop=True)
        if items is not None:
            items = items.assign(**{ITEM: items[ITEM].astype(str)}).drop_duplicates(ITEM).reset_index(drop=True)
        return cls(out, items, source)

    # --- shape -------------------------------------------------------------------------------------
    @property
    def context(self) -> tuple[str, ...]:
        """The per-event context columns kept (`read_interactions(..., context=[...])`)."""
        return tuple(c for c in self.df.columns if c not in (USER, ITEM, TIME))

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        extra = ""
        if self.attributes is not None:
            covered, cold = self.attributes.coverage(self.df[ITEM].unique())
            extra = f", attributes for {covered} of them (+{cold} cold items)"
        return (
            f"InteractionLog({len(self)} interactions, {self.n_users} users, {self.n_items} items{extra}, "
            f"timestamps={'yes' if self.has_time else 'no'}, source={self.source!r})"
        )

    @property
    def has_time(self) -> bool:
        return TIME in self.df.columns

    @property
    def n_users(self) -> int:
        return int(self.df[USER].nunique())

    @property
    def n_items(self) -> int:
        return int(self.df[ITEM].nunique())

    @property
    def users(self) -> np.ndarray:
        """Distinct user ids in log order."""
        return self.df[USER].unique()

    def titles(self) -> dict[str, str]:
        """Item id -> title, for the items that have one."""
        if self.items is None or "title" not in self.items.columns:
            return {}
        titled = self.items.dropna(subset=["title"])  # items of an attribute table may have none
        return dict(zip(titled[ITEM], titled["title"].astype(str)))

    # --- views -------------------------------------------------------------------------------------
    def sequences(self) -> dict[str, list[str]]:
        """User id -> that user's item ids, oldest first."""
        return {u: list(g) for u, g in self.df.groupby(USER, sort=False)[ITEM]}

    def grouped(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user ids, start offsets, lengths) of each user's contiguous block of rows: vectorised access."""
        return group_bounds(self.df[USER].to_numpy())

    def _with(self, df: pd.DataFrame) -> InteractionLog:
        return replace(self, df=df.reset_index(drop=True))

    def filter_users(self, users: Iterable[str]) -> InteractionLog:
        keep = set(map(str, users))
        return self._with(self.df[self.df[USER].isin(keep)])

    def concat(self, other: InteractionLog) -> InteractionLog:
        """This log followed by `other` (e.g. train + validation targets), re-sorted by user and time."""
        if self.has_time != other.has_time:
            raise DataError("cannot concatenate a log with timestamps and one without")
        items = self.items if self.items is not None else other.items
        both = InteractionLog.from_frame(
            pd.concat([self.df, other.df], ignore_index=True), items, self.source, context=self.context
        )
        return replace(
            both,
            attributes=self.attributes if self.attributes is not None else other.attributes,
            user_table=self.user_table if self.user_table is not None else other.user_table,
        )

    def with_items(self, table: ItemTable) -> InteractionLog:
        """This log with item attributes (`seqlens.read_items`). The table may lack some of the log's items (they
        get no attribute values) and hold items the log never saw (cold items); `repr` says how many."""
        titles = self.items[[ITEM, "title"]] if self.items is not None and "title" in self.items.columns else None
        items = table.frame if titles is None or "title" in table.frame.columns else titles.merge(table.frame, "outer")
        return replace(self, items=items, attributes=table)

    def with_users(self, table: UserTable) -> InteractionLog:
        """This log with user attributes (`seqlens.read_users`), which `SASRec(user_features=[...])` reads. The
        table may lack some of the log's users (their values are unknown) and hold users the log never saw."""
        return replace(self, user_table=table)

    def kcore(self, user_k: int = 5, item_k: int = 5) -> InteractionLog:
        """Iteratively drop users with fewer than `user_k` and items with fewer than `item_k` interactions."""
        df = self.df
        while True:
            item_counts = df[ITEM].map(df[ITEM].value_counts())
            user_counts = df[USER].map(df[USER].value_counts())
            keep = (item_counts >= item_k) & (user_counts >= user_k)
            if keep.all():
                return self._with(df)
            df = df[keep]
            if len(df) == 0:
                raise DataError(f"{self.source}: {user_k}/{item_k}-core filtering removed every interaction")

    def fingerprint(self) -> str:
        """A content hash (sha256, first 16 hex digits) recorded with a model, to know what it saw."""
        h = hashlib.sha256()
        for col in self.df.columns:
            h.update(col.encode())
            values = self.df[col].to_numpy()
            h.update(values.tobytes() if values.dtype.kind in "iuf" else "\x1f".join(values).encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class ItemTable:
    """Attributes per item (`frame`: one row per item id, as strings). `categorical` columns hold one value,
    `multi` columns a tuple of values, and `bands` maps each numeric column to its band edges.

    Read one with `seqlens.read_items` (items.py). The type is declared here, next to the log that holds one
    (`InteractionLog.attributes`), so that this module imports nothing of `data/`: items.py reads tables with
    readers.py, which builds logs.
    """

    frame: pd.DataFrame
    categorical: tuple[str, ...] = ()
    multi: tuple[str, ...] = ()
    bands: dict[str, list[float]] = field(default_factory=dict)
    source: str = "<dataframe>"

    @property
    def columns(self) -> tuple[str, ...]:
        """Every attribute column (numeric ones as their bands, which are categorical)."""
        return (*self.categorical, *self.multi)

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"ItemTable({len(self)} items, categorical={list(self.categorical)}, multi={list(self.multi)}, source={self.source!r})"

    def vocabulary(self, column: str) -> list[str]:
        """The distinct values of `column`, sorted (multi-valued columns: of every item's values)."""
        if column not in self.columns:
            raise DataError(f"{self.source}: no attribute column {column!r} (have {', '.join(self.columns)})")
        values = self.frame[column]
        flat = [v for vs in values for v in vs] if column in self.multi else list(values)
        return sorted(set(flat))

    def coverage(self, item_ids: Sequence[str]) -> tuple[int, int]:
        """(items of `item_ids` with attributes, table items not in `item_ids`: cold items)."""
        known, ids = set(self.frame[ITEM]), set(map(str, item_ids))
        return len(ids & known), len(known - ids)


@dataclass(frozen=True)
class UserTable:
    """Attributes per user (`frame`: one row per user id, values as strings); `bands` maps each numeric
    column to its band edges."""

    frame: pd.DataFrame
    columns: tuple[str, ...]
    bands: dict[str, list[float]] = field(default_factory=dict)
    source: str = "<dataframe>"

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"UserTable({len(self)} users, columns={list(self.columns)}, source={self.source!r})"

    def values_of(self, users: Sequence[str], column: str, missing: str = "unknown") -> list[str]:
        """The `column` value of each of `users` (`missing` for users the table does not hold)."""
        if column not in self.columns:
            raise DataError(f"{self.source}: no user column {column!r} (have {', '.join(self.columns)})")
        lookup = dict(zip(self.frame[USER], self.frame[column]))
        return [lookup.get(str(u), missing) for u in users]


def group_bounds(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct keys, start offsets, lengths) of the runs of equal values in `keys` (grouped rows)."""
    if len(keys) == 0:
        return keys, np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.flatnonzero(keys[1:] != keys[:-1]) + 1])
    lengths = np.diff(np.concatenate([starts, [len(keys)]]))
    return keys[starts], starts, lengths


def _looks_like_time(column: pd.Series) -> bool:
    name = str(column.name).lower()
    return pd.api.types.is_datetime64_any_dtype(column) or any(w in name for w in ("time", "date"))


def epoch_seconds(dates: pd.Series) -> np.ndarray:
    """Integer seconds since the epoch of a datetime column (naive times read as UTC), without the nanosecond
    overflow of pandas arithmetic on dates far from 1970."""
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    return dates.to_numpy().astype("datetime64[s]").astype(np.int64)


def _seconds(column: pd.Series, source: str, name: str) -> np.ndarray:
    """Integer seconds since the epoch from integer seconds, whole-valued floats or datetimes (naive = UTC)."""
    values = column
    if pd.api.types.is_datetime64_any_dtype(values):
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{source}: row {row + 1}, column {name!r}: empty time")
        return epoch_seconds(values)
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        raise DataError(
            f"{source}: column {name!r} must hold integer seconds or datetimes, got {values.dtype} "
            f"(first value {values.iloc[0]!r})"
        )
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy().astype(np.int64)
    array = values.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(array) | (array != np.round(array)) | (np.abs(array) > MAX_SECONDS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: row {row + 1}, column {name!r}: {float(array[row])!r} is not a whole number of seconds (integer seconds or datetimes expected)"
        )
    return array.astype(np.int64)
