"""Timestamps as the readers accept them: integer or float seconds, datetimes, or date strings, turned into whole
seconds; a bad value is reported by its file line (or row) and column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqlens.data.log import MAX_SECONDS, epoch_seconds
from seqlens.errors import DataError


def where(name: str, row: int, line_offset: int) -> str:
    return f"{name}:{int(row) + line_offset}" if line_offset else f"{name}: row {int(row) + 1}"


def parse_timestamps(col: pd.Series, name: str, label: str, rows: np.ndarray, line_offset: int) -> np.ndarray:
    """Integer seconds from numbers, datetimes or date strings; the first bad value is reported by line."""
    if col.isna().any():
        row = int(np.argmax(col.isna().to_numpy()))
        raise DataError(f"{where(name, rows[row], line_offset)}, column {label!r}: empty timestamp")
    if pd.api.types.is_datetime64_any_dtype(col):
        return epoch_seconds(col)
    if pd.api.types.is_bool_dtype(col):
        raise DataError(f"{where(name, rows[0], line_offset)}, column {label!r}: true/false is not a timestamp")
    if pd.api.types.is_numeric_dtype(col):
        return _whole_seconds(col.to_numpy(dtype=np.float64), col, name, label, rows, line_offset)
    numeric = pd.to_numeric(col, errors="coerce")
    if not numeric.isna().any():
        return _whole_seconds(numeric.to_numpy(dtype=np.float64), col, name, label, rows, line_offset)
    text = col.astype(str)
    foreign = ~text.map(str.isascii).to_numpy()  # e.g. Arabic-Indic digits, which dateutil reads as a year
    if foreign.any():
        row = int(np.argmax(foreign))
        raise DataError(
            f"{where(name, rows[row], line_offset)}, column {label!r}: value {col.iloc[row]!r} is neither a number "
            "nor a date (only ASCII digits are read)"
        )
    try:
        dates = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError):  # a "date" pandas cannot hold
        dates = pd.Series([_one_date(v) for v in col], index=col.index)
    if dates.isna().any():
        row = int(np.argmax(dates.isna().to_numpy() & numeric.isna().to_numpy()))
        raise DataError(
            f"{where(name, rows[row], line_offset)}, column {label!r}: value {col.iloc[row]!r} is neither a number "
            "nor a date"
        )
    return epoch_seconds(dates)


def _one_date(value: object) -> pd.Timestamp | None:
    """`value` as a UTC date, None when it is not one pandas can hold."""
    try:
        date = pd.to_datetime(value, utc=True)
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError, TypeError):
        return None
    return None if pd.isna(date) else date


def _whole_seconds(values: np.ndarray, col: pd.Series, name: str, label: str, rows: np.ndarray, line_offset: int):
    """Seconds (fractions dropped); a value beyond +-2^53 s (or not finite) cannot be a time: refused by line."""
    bad = ~np.isfinite(values) | (np.abs(values) > MAX_SECONDS)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{where(name, rows[row], line_offset)}, column {label!r}: value {col.iloc[row]!r} is out of range "
            "for a timestamp in seconds"
        )
    return np.floor(values).astype(np.int64)
