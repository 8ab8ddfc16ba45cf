"""Readers for the interaction formats practitioners have: tables, MovieLens, one-sequence-per-line.

Every reader returns an `InteractionLog` and reports bad input as a `DataError` naming the file, line,
column and value, so a user can fix the file without guessing.
"""

from __future__ import annotations

import gzip
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from seqlens.data.log import ITEM, TIME, USER, InteractionLog
from seqlens.data.streaming import stream_last
from seqlens.data.synthetic import synthetic_log
from seqlens.data.timestamps import parse_timestamps, where
from seqlens.errors import DataError

PathLike = str | os.PathLike


def read_interactions(
    source: PathLike | pd.DataFrame,
    user: str = USER,
    item: str = ITEM,
    time: str | None = TIME,
    sep: str | None = None,
    items: pd.DataFrame | None = None,
    context: Sequence[str] = (),
    keep_last: int | None = None,
) -> InteractionLog:
    """Read a CSV, TSV or Parquet file, a directory of Parquet files (or take a DataFrame) of interactions.

    `user`, `item` and `time` name the columns to use; pass `time=None` when there is no timestamp (file
    order is then the interaction order). Timestamps may be integer/float seconds or date strings.
    `items` is optional item metadata with an `item_id` column (e.g. `title`). `context` names per-event
    columns to keep (device, channel, any categorical), as strings. `keep_last` keeps only each user's that
    many most recent interactions, reading the file in batches (`seqlens.data.streaming`): for logs larger than
    memory, since a model reads at most `max_len` items of a history (keep one more for the held-out target
    of each split you make).
    """
    name = "<dataframe>" if isinstance(source, pd.DataFrame) else str(source)
    clash = [c for c in context if c in (user, item, time, USER, ITEM, TIME)]
    if clash:
        raise DataError(f"{name}: context column {clash[0]!r} is already the user, item or time column")
    if keep_last is not None and not isinstance(source, pd.DataFrame):
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise DataError(f"keep_last must be a positive number of interactions per user, got {keep_last!r}")
        return InteractionLog.from_frame(stream_last(Path(source), user, item, time, keep_last, context, sep), items,
                                         name, context=context)  # fmt: skip
    if isinstance(source, pd.DataFrame):
        df, line_offset = source, 0
    else:
        df, line_offset = _read_table(Path(source), sep, dtype={user: str, item: str})
    for col in (user, item, *((time,) if time else ()), *context):
        if col not in df.columns:
            raise DataError(f"{name}: missing column {col!r} (columns present: {', '.join(map(str, df.columns))})")
    if len(df) == 0:
        raise DataError(f"{name}: no interactions (the file is empty)")
    out = pd.DataFrame({USER: df[user].to_numpy(), ITEM: df[item].to_numpy(), **{c: df[c].to_numpy() for c in context}})
    rows = df.index.to_numpy()  # original row numbers (blank lines dropped), for error messages
    for col, label in ((USER, user), (ITEM, item), *((c, c) for c in context)):
        empty = out[col].isna().to_numpy()
        if empty.any():
            raise DataError(f"{where(name, rows[np.argmax(empty)], line_offset)}, column {label!r}: empty value")
    if time:
        out[TIME] = parse_timestamps(df[time], name, time, rows, line_offset)
    return InteractionLog.from_frame(out, items, name, context=context)


def _read_table(path: Path, sep: str | None, dtype: dict) -> tuple[pd.DataFrame, int]:
    """Read a table; returns it and the offset from row index to 1-based file line (header = line 1)."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".bz2", ".zst", ".xz")]
    kind = suffixes[-1] if suffixes else ""
    try:
        if kind == ".parquet" or path.is_dir():  # a directory: its Parquet files, as Spark or a warehouse writes them
            return pd.read_parquet(path), 1
        if sep is None:
            sep = "," if kind == ".csv" else "\t"
        # blank lines are kept while parsing, then dropped, so row labels stay file line numbers - 2
        with warnings.catch_warnings():  # a row with more fields than the header: an error, not dropped data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(
                path, sep=sep, dtype=dtype, keep_default_na=False, na_values=[""], skip_blank_lines=False,
                index_col=False,  # never take the first column for an index (it did when every row had one more field)
            )  # fmt: skip
        return df.dropna(how="all"), 2
    except pd.errors.ParserWarning:
        raise DataError(f"{path}:{_first_long_line(path, sep)}: more fields than the header (sep {sep!r})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: {str(e).strip().splitlines()[-1]}") from None
    except EOFError:
        raise _truncated(path) from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot be read as a {kind or 'delimited'} table ({e})") from None


def _truncated(path: Path) -> DataError:
    return DataError(f"{path}: the compressed file is truncated (it ends before its end-of-stream marker)")


def _first_long_line(path: Path, sep: str | None) -> int | str:
    """The first line with more `sep`-separated fields than the header (quotes ignored: a hint, not a parse)."""
    with _open_text(path) as f:
        width = None
        for lineno, line in enumerate(f, 1):
            fields = len(line.rstrip("\r\n").split(sep or ","))
            if width is None:
                width = fields
            elif fields > width:
                return lineno
    return "?"


FORMATS = ("auto", "csv", "tsv", "parquet", "movielens", "sequences", "synthetic")


def read_log(
    path: PathLike,
    format: str = "auto",
    user: str = USER,
    item: str = ITEM,
    time: str | None = TIME,
    timestamps: PathLike | None = None,
    titles: PathLike | None = None,
    context: Sequence[str] = (),
) -> InteractionLog:
    """Read any supported format; `format="auto"` decides by file name.

    `*.dat[.gz]` and `u.data` are MovieLens, `*.txt` one sequence per line (with optional aligned
    `timestamps`), `*.csv`/`*.tsv`/`*.parquet` tables with the given column names (and the per-event `context`
    columns kept). The path `synthetic` (or format "synthetic") is the built-in generator.
    """
    name = Path(path).name.lower()
    if format == "auto":
        if str(path) == "synthetic":
            format = "synthetic"
        elif name.startswith("u.data") or name.endswith((".dat", ".dat.gz")):
            format = "movielens"
        elif name.endswith((".txt", ".txt.gz")):
            format = "sequences"
        else:
            format = "table"
    if context and format not in ("table", "csv", "tsv", "parquet"):
        raise DataError(f"{path}: context columns ({', '.join(context)}) are read from tables (CSV, TSV, Parquet), "
                        f"not the {format} format")  # fmt: skip
    if format == "synthetic":
        return synthetic_log()
    if format == "movielens":
        return read_movielens(path, titles)
    if format == "sequences":
        return read_sequences(path, timestamps)
    if format in ("table", "csv", "tsv", "parquet"):
        sep = {"csv": ",", "tsv": "\t"}.get(format)
        items = read_movielens_titles(titles) if titles else None
        return read_interactions(path, user=user, item=item, time=time, sep=sep, items=items, context=context)
    raise DataError(f"format {format!r} is not one of {', '.join(FORMATS)}")


def _open_text(path: Path, encoding: str = "utf-8"):
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def read_movielens(path: PathLike, titles: PathLike | None = None) -> InteractionLog:
    """Read MovieLens ratings (`ratings.dat[.gz]` with `::`, or ML-100K `u.data` with tabs).

    Every rating counts as an interaction, ordered by timestamp (the usual sequential protocol). Titles
    and genres come from `movies.dat` / `u.item` next to the ratings file, or from `titles`.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    tabs = path.name.startswith("u.data")
    sep = "\t" if tabs else "::"
    # `::` is read as `:` with empty fields between (columns 0, 2, 4, 6): the fast C parser, no regex
    columns = [0, 1, 2, 3] if tabs else [0, 2, 4, 6]
    read = dict(sep="\t" if tabs else ":", header=None, encoding="latin-1", keep_default_na=False)
    try:
        raw = pd.read_csv(
            path, dtype={columns[0]: str, columns[1]: str, columns[2]: np.int64, columns[3]: np.int64}, **read
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no interactions (the file is empty)") from None
    except (pd.errors.ParserError, ValueError) as e:
        _raise_first_bad_movielens_line(path, sep)
        raise DataError(f"{path}: cannot be read as MovieLens ratings ({e})") from None
    except EOFError:
        raise _truncated(path) from None
    if raw.shape[1] != columns[-1] + 1:
        _raise_first_bad_movielens_line(path, sep)
    df = pd.DataFrame({USER: raw[columns[0]], ITEM: raw[columns[1]], "rating": raw[columns[2]], TIME: raw[columns[3]]})
    if titles is None:
        for candidate in ("movies.dat", "u.item"):
            if (path.parent / candidate).exists():
                titles = path.parent / candidate
                break
    items = read_movielens_titles(titles) if titles is not None else None
    return InteractionLog.from_frame(df, items, str(path))


def _raise_first_bad_movielens_line(path: Path, sep: str) -> None:
    """Scan the file line by line (only after the fast parser failed) and raise at the first bad line."""
    with _open_text(path, "latin-1") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split(sep)
            if len(fields) != 4 or (sep == "::" and any(":" in f for f in fields)):
                raise DataError(
                    f"{path}:{lineno}: expected 4 fields (user{sep}item{sep}rating{sep}timestamp), got {line[:80]!r}"
                )
            for col, label in ((2, "rating"), (3, "timestamp")):
                if not fields[col].strip().lstrip("-").isdigit():
                    raise DataError(
                        f"{path}:{lineno}, column {col + 1} ({label}): value {fields[col]!r} is not an integer"
                    )


def read_movielens_titles(path: PathLike) -> pd.DataFrame:
    """`movies.dat` (`id::title::genres`) or `u.item` (`id|title|date|...|genre flags`), latin-1."""
    path = Path(path)
    genre_names = [
        "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
        "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
    ]  # fmt: skip
    records = []
    with _open_text(path, "latin-1") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            if path.name.startswith("u.item"):
                fields = line.split("|")
                if len(fields) < 5:
                    raise DataError(f"{path}:{lineno}: expected id|title|date|..., got {line[:80]!r}")
                flags = fields[5:]
                genres = "|".join(g for g, flag in zip(genre_names, flags) if flag == "1")
            else:
                fields = line.split("::")
                if len(fields) != 3:
                    raise DataError(f"{path}:{lineno}: expected id::title::genres, got {line[:80]!r}")
                genres = fields[2]
            records.append((fields[0], fields[1], genres))
    return pd.DataFrame(records, columns=[ITEM, "title", "genres"])


def read_sequences(path: PathLike, timestamps: PathLike | None = None) -> InteractionLog:
    """Read one sequence per line (`user item item ...`, oldest first), as in the Amazon/S3-Rec files.

    `timestamps` is an optional aligned file (`user t1 t2 ...`, same users and lengths line by line).
    """
    path = Path(path)
    users, items, lengths, _ = _read_rows(path)
    df = pd.DataFrame({USER: np.repeat(users, lengths), ITEM: np.concatenate(items)})
    if timestamps is not None:
        tpath = Path(timestamps)
        t_users, t_values, t_lengths, t_lines = _read_rows(tpath)
        if len(t_users) != len(users):
            raise DataError(f"{tpath}: {len(t_users)} lines, but {path} has {len(users)}")
        for lineno, u, tu, n, tn in zip(t_lines, users, t_users, lengths, t_lengths):
            if u != tu or n != tn:
                raise DataError(
                    f"{tpath}:{lineno}: user {tu!r} with {tn} timestamps does not match user {u!r} with {n} items "
                    f"in {path}"
                )
        flat = np.concatenate(t_values)
        bad = ~np.char.isdigit(flat.astype(str))
        if bad.any():
            pos = int(np.argmax(bad))
            lineno = t_lines[int(np.searchsorted(np.cumsum(t_lengths), pos, side="right"))]
            raise DataError(f"{tpath}:{lineno}: timestamp {flat[pos]!r} is not an integer")
        df[TIME] = flat.astype(np.int64)
    return InteractionLog.from_frame(df, None, str(path))


def _lines(f, path: Path):
    """The binary lines of `f`; a truncated compressed file is a DataError, not an EOFError."""
    try:
        yield from f
    except EOFError:
        raise _truncated(path) from None


def _read_rows(path: Path) -> tuple[list[str], list[np.ndarray], np.ndarray, list[int]]:
    """(first field, remaining fields, their counts, file line numbers) of every non-blank line."""
    users, values, lines = [], [], []
    if not path.exists():
        raise DataError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for lineno, raw in enumerate(_lines(f, path), 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}, column {e.start + 1}: byte {raw[e.start]:#04x} is not UTF-8 text"
                ) from None
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise DataError(f"{path}:{lineno}: user {fields[0]!r} has no items (expected 'user item item ...')")
            users.append(fields[0])
            values.append(np.array(fields[1:], dtype=object))
            lines.append(lineno)
    if not users:
        raise DataError(f"{path}: no sequences (the file is empty)")
    return users, values, np.array([len(v) for v in values]), lines
