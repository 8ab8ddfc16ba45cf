"""User attributes read into one table (gender, age, occupation, ...): cohorts for monitoring and audits, and
features for a model.

`read_users` takes a CSV, TSV or Parquet table with a user id column (or a DataFrame), or MovieLens'
`users.dat` (`UserID::Gender::Age::Occupation::Zip-code`, ML-1M: age is already a group) and `u.user`
(`user id | age | gender | occupation | zip code`, ML-100K: age in years, read as quantile bands). Values
become strings, numeric columns bands ("band 2 of 4"), as `read_items` does for items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqlens.data.items import _banded, _refuse_empty, read_table
from seqlens.data.log import USER, UserTable
from seqlens.errors import DataError

#: the columns of MovieLens' user files, and which of them are kept as what
MOVIELENS = {
    "users.dat": (("user_id", "gender", "age", "occupation", "zip"), "::", ("gender", "age", "occupation"), ()),
    "u.user": (("user_id", "age", "gender", "occupation", "zip"), "|", ("gender", "occupation"), ("age",)),
}


@dataclass(frozen=True)
class UserCodes:
    """A model's user attribute values as integer codes (`SASRec(user_features=[...])`), saved with it.

    `vocabularies[column]` lists the column's values (code k >= 1 is value k - 1; 0 is unknown); `users` maps each
    user of the training table to its codes, one per column in `vocabularies`' order.
    """

    vocabularies: dict[str, list[str]]
    users: dict[str, list[int]]

    @property
    def columns(self) -> list[str]:
        return list(self.vocabularies)

    def of(
        self, labels: Sequence[str], given: Mapping[str, Mapping[str, str]] | None = None
    ) -> tuple[np.ndarray, dict[str, list[str]]]:
        """[len(labels), columns] codes: a label's `given` values (column -> value) where given, else the stored
        user's, else unknown (0); and per column, the given values the vocabulary lacks (unknown too)."""
        out = np.zeros((len(labels), len(self.vocabularies)), dtype=np.int64)
        lookups = [{v: k + 1 for k, v in enumerate(vs)} for vs in self.vocabularies.values()]
        unknown: dict[str, list[str]] = {}
        for i, label in enumerate(labels):
            values = (given or {}).get(label)
            if values is None:
                out[i] = self.users.get(label, 0)
                continue
            stray = sorted(set(values) - set(self.vocabularies))
            if stray:
                raise DataError(
                    f"user attributes of {label!r}: no user feature {stray[0]!r} (have {', '.join(self.columns)})"
                )
            for j, (column, lookup) in enumerate(zip(self.vocabularies, lookups)):
                if column in values:
                    out[i, j] = lookup.get(str(values[column]), 0)
                    if out[i, j] == 0:
                        unknown.setdefault(column, []).append(str(values[column]))
        return out, unknown

    def values_of(self, user: str) -> dict[str, str]:
        """A stored user's attribute values (column -> value; none for a user the table did not hold)."""
        codes = self.users.get(user, [0] * len(self.vocabularies))
        return {c: vs[k - 1] for (c, vs), k in zip(self.vocabularies.items(), codes) if k > 0}

    def to_json(self) -> dict:
        return {"vocabularies": self.vocabularies, "users": self.users}

    @classmethod
    def from_json(cls, value: object, where: str) -> UserCodes:
        """Read `to_json`'s output back, refusing codes outside their vocabulary (a corrupt file)."""
        if not isinstance(value, dict) or set(value) != {"vocabularies", "users"}:
            raise DataError(f"{where}: expected an object with 'vocabularies' and 'users'")
        vocabularies, users = value["vocabularies"], value["users"]
        sizes = [len(v) for v in vocabularies.values()]
        for user, codes in users.items():
            if len(codes) != len(sizes) or any(not isinstance(c, int) or not 0 <= c <= n for c, n in zip(codes, sizes)):
                raise DataError(f"{where}: codes of user {user!r} do not fit the vocabularies ({codes!r})")
        return cls(vocabularies, users)


def user_codes(table: UserTable, columns: Sequence[str]) -> UserCodes:
    """The codes of `columns` for every user of `table`; vocabularies are the table's values, sorted."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{table.source}: no user column {missing[0]!r} (have {', '.join(table.columns) or 'none'})")
    vocabularies = {c: sorted(table.frame[c].unique().tolist()) for c in columns}
    coded = np.stack([pd.Index(vocabularies[c]).get_indexer(table.frame[c]) + 1 for c in columns], 1)
    return UserCodes(vocabularies, dict(zip(table.frame[USER].tolist(), coded.tolist())))


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
