"""Item attributes read into one table: categorical values, multi-valued ones, numeric values in bands.

`read_items` takes a CSV, TSV, Parquet or JSON table (or a DataFrame), the `item2attributes.json` mapping
of the Amazon and LastFM data (item id -> attribute ids, one multi-valued column), or MovieLens'
`movies.dat` / `u.item` (title and genres). Values become strings, multi-valued ones tuples of strings, and
numeric columns quantile bands ("band 2 of 4"), so a model can embed every column the same way. The
table may hold items an interaction log never saw: those are the cold items a feature model can rank.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    edges: Mapping[str, Sequence[float]] | None = None,
) -> ItemTable:
    """Read an item attribute table; see the module docstring for the formats.

    `item` names the id column; `categorical`, `multi` and `numeric` name the attribute columns to keep
    (a multi-valued column holds lists, or strings split at `separator`); numeric columns are cut into
    `bands` quantile bands, or at given `edges` per column (a fitted model's, `model.item_codes_.bands`, so
    that new items' bands mean what they meant in training; values beyond the ends go to the end bands).
    For `item2attributes.json` the one column is `attributes` (or the one name in `multi`); for MovieLens it
    is `genres` (multi-valued) and the title is kept.
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
    unknown = sorted(set(edges or {}) - set(numeric))
    if unknown:
        raise DataError(f"edges given for {unknown[0]!r}, which is not one of the numeric columns {list(numeric)}")
    cuts = {}
    for c in numeric:
        out[c], cuts[c] = _banded(frame[c], bands, name, c, (edges or {}).get(c))
    return ItemTable(out, (*categorical, *numeric), tuple(multi), cuts, name)


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


def _banded(
    values: pd.Series, bands: int, name: str, column: str, edges: Sequence[float] | None = None
) -> tuple[list[str], list[float]]:
    """Bands of a numeric column as labels ('band 1 of 4' = lowest), and the edges used: quantile bands, or the
    given `edges` (values beyond them go to the end bands)."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name}: row {row + 1}, column {column!r}: {values.iloc[row]!r} is not a number")
    if edges is None:
        codes, cut = pd.qcut(numbers, bands, labels=False, retbins=True, duplicates="drop")
        if len(cut) < 2:  # one distinct value: one band, from it to itself
            return ["band 1 of 1"] * len(numbers), [float(cut[0])] * 2
        return [f"band {int(k) + 1} of {len(cut) - 1}" for k in codes], [float(e) for e in cut]
    cut = np.asarray(edges, dtype=np.float64)
    if cut.ndim != 1 or len(cut) < 2 or (np.diff(cut) < 0).any():
        raise DataError(f"edges of {column!r} must be at least two numbers in order, got {list(edges)}")
    inner = np.searchsorted(cut[1:-1], numbers.to_numpy(dtype=np.float64), side="left")  # as qcut: (lo, hi]
    return [f"band {int(k) + 1} of {len(cut) - 1}" for k in inner], [float(e) for e in cut]


@dataclass(frozen=True)
class ItemCodes:
    """A catalogue's attribute values as integer codes, what a feature model embeds and saves.

    `codes[column]` is [n_items + 1, width]: row i holds item i's value codes (1..len(vocabulary), 0 = none;
    a categorical column has width 1, a multi-valued one the most values any item has); row 0 is padding.
    `bands` holds the edges numeric columns were cut at (`read_items(..., edges=...)` cuts new items alike).
    """

    vocabularies: dict[str, list[str]]
    codes: dict[str, np.ndarray]
    bands: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"vocabularies": self.vocabularies, "bands": self.bands,
                "codes": {c: m.tolist() for c, m in self.codes.items()}}  # fmt: skip

    @classmethod
    def from_json(cls, value: object, where: str) -> ItemCodes:
        """Read `to_json`'s output back, refusing codes outside their vocabulary (a corrupt file). Files written
        before `bands` was saved have none."""
        if not isinstance(value, dict) or set(value) - {"bands"} != {"vocabularies", "codes"}:
            raise DataError(f"{where}: expected an object with 'vocabularies' and 'codes'")
        bands = value.get("bands", {})
        if not isinstance(bands, dict) or not all(isinstance(e, list) for e in bands.values()):
            raise DataError(f"{where}: 'bands' must map numeric columns to their edges")
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
        return cls(vocabularies, codes, {c: [float(x) for x in e] for c, e in bands.items()})

    def extended(self, table: ItemTable, item_ids: Sequence[str] | np.ndarray) -> tuple[ItemCodes, dict[str, list]]:
        """These codes followed by rows for `item_ids` (new items, from `table`), coded with these vocabularies;
        and per column, the values of theirs that the vocabulary lacks (left out: the item keeps the rest)."""
        _check_columns(table, list(self.codes))
        unsaved = [c for c in self.codes if c in table.bands and c not in self.bands]
        if unsaved:
            raise DataError(f"{table.source}: column {unsaved[0]!r} is numeric here, but the model has no band edges "
                            "for it (categorical in training, or a model saved before seqlens kept edges): its bands "
                            "would mean other values")  # fmt: skip
        for c, edges in self.bands.items():
            if table.bands.get(c) != edges:
                raise DataError(
                    f"{table.source}: column {c!r} was cut into bands at {edges} in training, here at "
                    f"{table.bands.get(c, 'none (not read as numeric)')}; read the table with "
                    f"read_items(..., numeric=[{c!r}], edges=model.item_codes_.bands)"
                )
        codes, unknown = {}, {}
        for c, old in self.codes.items():
            new, unknown[c] = _coded(table, item_ids, c, {v: k + 1 for k, v in enumerate(self.vocabularies[c])})
            width = max(old.shape[1], new.shape[1])
            codes[c] = np.concatenate([np.pad(old, ((0, 0), (0, width - old.shape[1]))),
                                       np.pad(new[1:], ((0, 0), (0, width - new.shape[1])))])  # fmt: skip
        return ItemCodes(self.vocabularies, codes, self.bands), {c: u for c, u in unknown.items() if u}


def item_codes(table: ItemTable, item_ids: Sequence[str] | np.ndarray, columns: Sequence[str]) -> ItemCodes:
    """The codes of `columns` for the catalogue `item_ids` (internal index i = item_ids[i - 1]); items the table
    lacks get no values. Vocabularies are the table's values, sorted."""
    _check_columns(table, columns)
    vocabularies = {c: table.vocabulary(c) for c in columns}
    codes = {c: _coded(table, item_ids, c, {v: k + 1 for k, v in enumerate(vocabularies[c])})[0] for c in columns}
    return ItemCodes(vocabularies, codes, {c: table.bands[c] for c in columns if c in table.bands})


def _check_columns(table: ItemTable, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{table.source}: no attribute column {missing[0]!r} (have {', '.join(table.columns) or 'none'})"
        )


def _coded(
    table: ItemTable, item_ids: Sequence[str] | np.ndarray, column: str, code: dict[str, int]
) -> tuple[np.ndarray, list[str]]:
    """[len(item_ids) + 1, width] codes of `column` (row 0: padding; items the table lacks: none), and the values
    `code` lacks (sorted; left out)."""
    rows = pd.Index(table.frame[ITEM]).get_indexer([str(i) for i in item_ids])  # -1 where the table lacks an item
    cells = table.frame[column].to_numpy()
    values = [() if r < 0 else (cells[r] if column in table.multi else (cells[r],)) for r in rows]
    known = [[code[v] for v in vs if v in code] for vs in values]
    matrix = np.zeros((len(item_ids) + 1, max(1, max(map(len, known), default=1))), dtype=np.int64)
    for i, ks in enumerate(known, start=1):
        matrix[i, : len(ks)] = ks
    return matrix, sorted({v for vs in values for v in vs if v not in code})
