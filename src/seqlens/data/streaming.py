"""Reading a log larger than memory: each user's most recent interactions only, read batch by batch.

A model reads at most `max_len` items of a history, so a log of a hundred million rows need never be in memory
at once: PyArrow's dataset scanner reads a Parquet file, a directory of Parquet files (as Spark or a warehouse
writes them: `part-*.parquet`, `_SUCCESS` ignored) or a CSV file in record batches, and after each batch only
the `keep_last` most recent rows of each user are kept. Peak memory grows with the rows kept (users x
keep_last) and one batch, not with the rows read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from seqlens.data.log import ITEM, TIME, USER
from seqlens.data.timestamps import parse_timestamps, where
from seqlens.errors import DataError

#: rows per record batch read
BATCH_ROWS = 1 << 20
_ROW = "_row"  # each row's number in the source: ties in time keep the file's order, errors name the row


def stream_last(
    path: Path, user: str, item: str, time: str | None, keep_last: int, context: Sequence[str], sep: str | None
) -> pd.DataFrame:
    """The rows of the source at `path` that are among the `keep_last` most recent of their user, as a frame with
    columns user_id, item_id, timestamp (integer seconds; absent without `time`) and the `context` columns."""
    import pyarrow as pa

    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    columns = [user, item, *((time,) if time else ()), *context]
    try:
        dataset = _dataset(path, sep, user, item)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: cannot be read as Parquet or CSV ({e})") from None
    present = dataset.schema.names
    for col in columns:
        if col not in present:
            raise DataError(f"{path}: missing column {col!r} (columns present: {', '.join(present)})")
    kept, trimmed_at, offset = pd.DataFrame(), 0, 0
    try:
        for batch in dataset.to_batches(columns=columns, batch_size=BATCH_ROWS):
            part = batch.to_pandas()
            rows = np.arange(offset, offset + len(part))
            offset += len(part)
            for col in (user, item, *context):
                empty = part[col].isna().to_numpy()
                if empty.any():
                    raise DataError(f"{where(str(path), rows[np.argmax(empty)], 0)}, column {col!r}: empty value")
            frame = pd.DataFrame({USER: part[user].to_numpy(), ITEM: part[item].to_numpy(), _ROW: rows})
            if time:
                frame[TIME] = parse_timestamps(part[time], str(path), time, rows, 0)
            for col in context:
                frame[col] = part[col].to_numpy()
            kept = pd.concat([kept, frame], ignore_index=True) if len(kept) else frame
            if len(kept) > 2 * trimmed_at + BATCH_ROWS:  # trim when it has grown: amortised, not every batch
                kept = _last_per_user(kept, keep_last)
                trimmed_at = len(kept)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataError(f"{path}: {e}") from None
    if offset == 0:
        raise DataError(f"{path}: no interactions (the file is empty)")
    return _last_per_user(kept, keep_last).drop(columns=_ROW)


def _dataset(path: Path, sep: str | None, user: str, item: str):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    suffixes = [s.lower() for s in path.suffixes]
    if path.is_dir() or ".parquet" in suffixes:
        return ds.dataset(path, format="parquet")
    delimiter = sep or ("," if ".csv" in suffixes else "\t")
    csv = ds.CsvFileFormat(
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types={user: pa.string(), item: pa.string()}
        ),  # ids stay as written
    )
    return ds.dataset(path, format=csv)


def _last_per_user(frame: pd.DataFrame, keep_last: int) -> pd.DataFrame:
    """Each user's `keep_last` most recent rows (by time, then source order), users in order of their ids."""
    order = [USER, TIME, _ROW] if TIME in frame.columns else [USER, _ROW]
    frame = frame.sort_values(order, kind="stable")
    return frame.groupby(USER, sort=False).tail(keep_last).reset_index(drop=True)
