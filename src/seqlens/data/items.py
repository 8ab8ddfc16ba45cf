"""Item attributes read into one table: categorical values, multi-valued ones, numeric values in bands.

`read_items` takes a CSV, TSV, Parquet or JSON table (or a DataFrame), the `item2attributes.json` mapping
of the Amazon and LastFM data (item id -> attribute ids, one multi-valued column), or MovieLens'
`movies.dat` / `u.item` (title and genres). Values become strings, multi-valued ones tuples of strings, and
numeric columns quantile bands ("band 2 of 4"), so a model can embed every column the same way. The
table may hold items an interaction log never saw: those are the cold items a feature model can rank.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqlens.data.log import ITEM, ItemTable
from seqlens.data.readers import read_movielens_titles
from seqlens.errors import DataError

#: the column `item2attributes.json` and MovieLens genres are read into
ATTRIBUTES, GENRES = "attributes", "genres"


def read_items(
    source: str | Path | pd.DataFrame,
    item: str = ITEM,
    categorical: Sequence[str] = (),
    multi: Sequence[str] = (),
    numeric: Sequence[str] = (),
    bands: int = 4,
    separator: str = "|",
) -> ItemTable:
    """Read an item attribute table; see the module docstring for the formats.

    `item` names the id column; `categorical`, `multi` and `numeric` name the attribute columns to keep
    (a multi-valued column holds lists, or strings split at `separator`); numeric columns are cut into
    `bands` quantile bands. For `item2attributes.json` the one column is `attributes` (or the one name in
    `multi`); for MovieLens it is `genres` (multi-valued) and the title is kept.
    """
    frame, name, multi = _frame(source, item, multi)
    frame = frame.rename(columns={item: ITEM})
    wanted = [*categorical, *multi, *numeric]
    missing = [c for c in [ITEM, *wanted] if c not in frame.columns]
    if missing:
        raise DataError(
            f"{name}: missing column {missing[0]!r} (columns present: {', '.join(map(str, frame.columns))})"
        )
    if bands < 2:
        raise DataError(f"bands={bands} must be at least 2")
    _refuse_empty(frame, [ITEM, *categorical, *numeric], name)
    frame = frame.assign(**{ITEM: frame[ITEM].astype(str)})
    duplicated = frame[ITEM].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataError(f"{name}: row {row + 1}: item id {frame[ITEM].iloc[row]!r} appears twice")
    out = pd.DataFrame({ITEM: frame[ITEM].to_numpy()})
    if "title" in frame.columns:
        out["title"] = frame["title"].astype(str).to_numpy()
    for c in categorical:
        out[c] = frame[c].astype(str).to_numpy()
    for c in multi:
        out[c] = [_values(v, separator, name, row, c) for row, v in enumerate(frame[c])]
    edges = {}
    for c in numeric:
        out[c], edges[c] = _banded(frame[c], bands, name, c)
    return ItemTable(out, (*categorical, *numeric), tuple(multi), edges, name)


def _frame(source, item: str, multi: Sequence[str]) -> tuple[pd.DataFrame, str, tuple[str, ...]]:
    """The raw table, its name for messages, and the multi-valued columns (the formats with one fix them)."""
    if isinstance(source, pd.DataFrame):
        return source, "<dataframe>", tuple(multi)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = str(path)
    if path.name.startswith(("movies.dat", "u.item")):
        return read_movielens_titles(path).rename(columns={ITEM: item}), name, (GENRES,)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        if isinstance(data, dict):  # item2attributes.json: {item id: [attribute ids]}
            column = multi[0] if len(multi) == 1 else ATTRIBUTES
            return pd.DataFrame({item: list(data), column: list(data.values())}), name, (column,)
        if isinstance(data, list):
            return pd.DataFrame.from_records(data), name, tuple(multi)
        raise DataError(f"{path}: expected an object (item id -> attributes) or a list of records")
    return read_table(path), name, tuple(multi)


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet, TSV (.tsv, .tab) or CSV table; text columns as strings, empty cells missing."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    sep = "\t" if path.suffix in (".tsv", ".tab") else ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])


def _refuse_empty(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    for c in columns:
        empty = frame[c].isna().to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise DataError(f"{name}: row {row + 1}, column {c!r}: empty value")


def _values(value, separator: str, name: str, row: int, column: str) -> tuple[str, ...]:
    """A multi-valued cell as a tuple of strings: a list as it is, a string split at `separator`, empty as ()."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(str(v) for v in value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split(separator) if v)
    raise DataError(f"{name}: row {row + 1}, column {column!r}: expected a list or a string, got {value!r}")


def _banded(values: pd.Series, bands: int, name: str, column: str) -> tuple[list[str], list[float]]:
    """Quantile bands of a numeric column as labels ('band 1 of 4' = lowest), and the edges used."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name}: row {row + 1}, column {column!r}: {values.iloc[row]!r} is not a number")
    codes, edges = pd.qcut(numbers, bands, labels=False, retbins=True, duplicates="drop")
    n = len(edges) - 1
    return [f"band {int(k) + 1} of {n}" for k in codes], [float(e) for e in edges]


@dataclass(frozen=True)
class ItemCodes:
    """A catalogue's attribute values as integer codes, what a feature model embeds and saves.

    `codes[column]` is [n_items + 1, width]: row i holds item i's value codes (1..len(vocabulary), 0 = none;
    a categorical column has width 1, a multi-valued one the most values any item has); row 0 is padding.
    """

    vocabularies: dict[str, list[str]]
    codes: dict[str, np.ndarray]

    def to_json(self) -> dict:
        return {"vocabularies": self.vocabularies,
                "codes": {c: m.tolist() for c, m in self.codes.items()}}  # fmt: skip

    @classmethod
    def from_json(cls, value: object, where: str) -> ItemCodes:
        """Read `to_json`'s output back, refusing codes outside their vocabulary (a corrupt file)."""
        if not isinstance(value, dict) or set(value) != {"vocabularies", "codes"}:
            raise DataError(f"{where}: expected an object with 'vocabularies' and 'codes'")
        vocabularies, codes = value["vocabularies"], {}
        for column, rows in value["codes"].items():
            try:
                matrix = np.asarray(rows, dtype=np.int64)
            except (TypeError, ValueError):
                raise DataError(f"{where}: codes of {column!r} are not a table of integers") from None
            size = len(vocabularies.get(column, ()))
            if matrix.ndim != 2 or (matrix.size and (matrix.min() < 0 or matrix.max() > size)):
                raise DataError(f"{where}: codes of {column!r} are outside its vocabulary of {size} values")
            codes[column] = matrix
        return cls(vocabularies, codes)


def item_codes(table: ItemTable, item_ids: Sequence[str] | np.ndarray, columns: Sequence[str]) -> ItemCodes:
    """The codes of `columns` for the catalogue `item_ids` (internal index i = item_ids[i - 1]); items the table
    lacks get no values. Vocabularies are the table's values, sorted."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{table.source}: no attribute column {missing[0]!r} (have {', '.join(table.columns) or 'none'})"
        )
    rows = pd.Index(table.frame[ITEM]).get_indexer([str(i) for i in item_ids])  # -1 where the table lacks an item
    vocabularies, codes = {}, {}
    for c in columns:
        vocabularies[c] = table.vocabulary(c)
        code = {v: k + 1 for k, v in enumerate(vocabularies[c])}
        cells = table.frame[c].to_numpy()
        values = [() if r < 0 else (cells[r] if c in table.multi else (cells[r],)) for r in rows]
        matrix = np.zeros((len(item_ids) + 1, max(1, max(map(len, values), default=1))), dtype=np.int64)
        for i, vs in enumerate(values, start=1):
            matrix[i, : len(vs)] = [code[v] for v in vs]
        codes[c] = matrix
    return ItemCodes(vocabularies, codes)
