"""What a model knows of a request besides its history, as integer codes it embeds: the user's attributes
(`UserCodes`, from a `UserTable`) and the request's context (`ContextCodes`, from the per-event columns
`read_interactions(..., context=[...])` keeps: device, channel, ...).

Each column has a vocabulary (code k >= 1 is its value k - 1; 0 is unknown: a user the table lacks, a value
training never saw, a request that does not say). Both are saved with the model as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqlens.data.log import USER, InteractionLog, UserTable
from seqlens.errors import DataError


@dataclass(frozen=True)
class ValueCodes:
    """Categorical columns and their vocabularies: what `of` codes a request's values with."""

    vocabularies: dict[str, list[str]]

    @property
    def columns(self) -> list[str]:
        return list(self.vocabularies)

    def of(self, values: Sequence[Mapping[str, str] | None]) -> tuple[np.ndarray, dict[str, list[str]]]:
        """[len(values), columns] codes of each row's `values` (column -> value; None or a column left out:
        unknown), and per column the values the vocabulary lacks (coded unknown). A column it does not have is
        refused."""
        out = np.zeros((len(values), len(self.vocabularies)), dtype=np.int64)
        lookups = [{v: k + 1 for k, v in enumerate(vs)} for vs in self.vocabularies.values()]
        unknown: dict[str, list[str]] = {}
        for i, given in enumerate(values):
            if given is None:
                continue
            stray = sorted(set(given) - set(self.vocabularies))
            if stray:
                raise DataError(f"no {self.kind} {stray[0]!r} (the model reads {', '.join(self.columns)})")
            for j, (column, lookup) in enumerate(zip(self.vocabularies, lookups)):
                if column in given:
                    out[i, j] = lookup.get(str(given[column]), 0)
                    if out[i, j] == 0:
                        unknown.setdefault(column, []).append(str(given[column]))
        return out, unknown

    def of_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """[len(frame), columns] codes of a frame's rows (a log's events; values the vocabulary lacks, and columns
        the frame lacks: unknown)."""
        out = np.zeros((len(frame), len(self.vocabularies)), dtype=np.int64)
        for j, (c, vs) in enumerate(self.vocabularies.items()):
            if c in frame.columns:
                out[:, j] = pd.Index(vs).get_indexer(frame[c].astype(str)) + 1
        return out

    @property
    def kind(self) -> str:
        """What a column is called in errors."""
        return "column"


@dataclass(frozen=True)
class ContextCodes(ValueCodes):
    """A model's request context columns and their vocabularies (`SASRec(context=[...])`)."""

    @property
    def kind(self) -> str:
        return "context column"

    def to_json(self) -> dict:
        return {"vocabularies": self.vocabularies}

    @classmethod
    def from_json(cls, value: object, where: str) -> ContextCodes:
        if not isinstance(value, dict) or set(value) != {"vocabularies"} or not _vocabularies(value["vocabularies"]):
            raise DataError(f"{where}: expected an object with 'vocabularies' (lists of values per column)")
        return cls(value["vocabularies"])


def context_codes(log: InteractionLog, columns: Sequence[str]) -> ContextCodes:
    """The vocabularies of `log`'s context `columns` (sorted values)."""
    missing = [c for c in columns if c not in log.context]
    if missing:
        raise DataError(
            f"{log.source}: no context column {missing[0]!r} (kept: {', '.join(log.context) or 'none'}); read the "
            f"log with read_interactions(..., context=[{missing[0]!r}])"
        )
    return ContextCodes({c: sorted(log.df[c].unique().tolist()) for c in columns})


@dataclass(frozen=True)
class UserCodes(ValueCodes):
    """A model's user attribute columns (`SASRec(user_features=[...])`), their vocabularies, and the codes of every
    user of the training table (`users`, one per column in `vocabularies`' order)."""

    users: dict[str, list[int]]

    @property
    def kind(self) -> str:
        return "user feature"

    def for_users(self, users: Sequence[str]) -> np.ndarray:
        """[len(users), columns]: the stored codes of `users` (unknown, 0, for a user the table did not hold)."""
        unknown = [0] * len(self.vocabularies)
        return np.array([self.users.get(user, unknown) for user in users], dtype=np.int64).reshape(len(users), -1)

    def values_of(self, user: str) -> dict[str, str]:
        """A stored user's attribute values (column -> value; none for a user the table did not hold)."""
        codes = self.users.get(user, [0] * len(self.vocabularies))
        return {c: vs[k - 1] for (c, vs), k in zip(self.vocabularies.items(), codes) if k > 0}

    def to_json(self) -> dict:
        return {"vocabularies": self.vocabularies, "users": self.users}

    @classmethod
    def from_json(cls, value: object, where: str) -> UserCodes:
        """Read `to_json`'s output back, refusing codes outside their vocabulary (a corrupt file)."""
        if (
            not isinstance(value, dict)
            or set(value) != {"vocabularies", "users"}
            or not _vocabularies(value["vocabularies"])
        ):
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


def _vocabularies(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()
    )
