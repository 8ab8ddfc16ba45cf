"""User attributes read into one table (gender, age, occupation, ...): cohorts for monitoring and audits, and
features for a model.

`read_users` takes a CSV, TSV or Parquet table with a user id column (or a DataFrame), or MovieLens'
`users.dat` (`UserID::Gender::Age::Occupation::Zip-code`, ML-1M: age is already a group) and `u.user`
(`user id | age | gender | occupation | zip code`, ML-100K: age in years, read as quantile bands). Values
become strings, numeric columns bands ("band 2 of 4"), as `read_items` does for items.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from seqlens.data.items import _banded, _refuse_empty, read_table
from seqlens.data.log import USER, UserTable
from seqlens.errors import DataError

#: the columns of MovieLens' user files, and which of them are kept as what
MOVIELENS = {
    "users.dat": (("user_id", "gender", "age", "occupation", "zip"), "::", ("gender", "age", "occupation"), ()),
    "u.user": (("user_id", "age", "gender", "occupation", "zip"), "|", ("gender", "occupation"), ("age",)),
}


def read_users(
    source: str | Path | pd.DataFrame,
    user: str = USER,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    bands: int = 4,
) -> UserTable:
    """Read a user attribute table (see the module docstring); MovieLens files need no column names."""
    frame, name = _frame(source)
    if isinstance(source, (str, Path)) and Path(source).name in MOVIELENS:
        _, _, categorical, numeric = MOVIELENS[Path(source).name]
        user = USER
    columns = [user, *categorical, *numeric]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{name}: missing column {missing[0]!r} (columns present: {', '.join(map(str, frame.columns))})"
        )
    _refuse_empty(frame, columns, name)
    ids = frame[user].astype(str)
    if ids.duplicated().any():
        row = int(ids.duplicated().to_numpy().nonzero()[0][0])
        raise DataError(f"{name}: row {row + 1}, column {user!r}: user {ids.iloc[row]!r} appears twice")
    out = pd.DataFrame({USER: ids.to_numpy()})
    for c in categorical:
        out[c] = frame[c].astype(str).to_numpy()
    edges = {}
    for c in numeric:
        out[c], edges[c] = _banded(frame[c], bands, name, c)
    return UserTable(out, (*categorical, *numeric), edges, name)


def _frame(source) -> tuple[pd.DataFrame, str]:
    if isinstance(source, pd.DataFrame):
        return source, "<dataframe>"
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.name in MOVIELENS:
        names, sep, _, _ = MOVIELENS[path.name]
        try:
            frame = pd.read_csv(path, sep=sep, names=list(names), dtype=str, engine="python", encoding="latin-1")
        except (pd.errors.ParserError, ValueError) as e:
            raise DataError(f"{path}: not a MovieLens user file ({e})") from None
        return frame, str(path)
    return read_table(path), str(path)
