"""The public datasets seqlens is measured on, by name: where each lives under a data root, how it is read.

Their licences forbid redistribution, so seqlens ships none of them: `load_dataset("beauty", root=...)`
reads a copy you have, laid out as below (the layout of the copies the benchmarks use). The root is the
`root` argument, else the `SEQLENS_DATA` environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seqlens.errors import DataError

if TYPE_CHECKING:
    from seqlens.data.log import InteractionLog

ROOT_VARIABLE = "SEQLENS_DATA"


@dataclass(frozen=True)
class Dataset:
    """One dataset: its main file under the root, and how to read it (given the root)."""

    path: str
    read: Callable[[Path], InteractionLog]
    about: str


# The readers (and pandas) are imported when a dataset is read, not when the names are listed (`seqlens train
# --help` shows them).
def _with_attributes(log: InteractionLog, table: Path) -> InteractionLog:
    """The log with the dataset's item attribute table attached, when the copy has it (a feature model reads
    it: `SASRec(features=["attributes"])` on the Amazon and LastFM data, `["genres"]` on MovieLens)."""
    from seqlens.data.items import read_items

    return log.with_items(read_items(table)) if table.is_file() else log


def _beauty(root: Path) -> InteractionLog:
    from seqlens.data.readers import read_sequences

    log = read_sequences(root / "beauty" / "Beauty_item.txt", timestamps=root / "beauty" / "Beauty_time.txt")
    return _with_attributes(log, root / "beauty" / "Beauty_item2attributes.json")


def _with_users(log: InteractionLog, table: Path) -> InteractionLog:
    """The log with the dataset's user table attached, when the copy has it (`SASRec(user_features=["gender",
    "age", "occupation"])` on MovieLens reads it)."""
    from seqlens.data.users import read_users

    return log.with_users(read_users(table)) if table.is_file() else log


def _ml_1m(root: Path) -> InteractionLog:
    from seqlens.data.readers import read_movielens

    log = read_movielens(root / "ml-1m" / "ratings_users_1-2999.dat.gz", titles=root / "ml-1m" / "movies.dat")
    return _with_users(_with_attributes(log, root / "ml-1m" / "movies.dat"), root / "ml-1m" / "users.dat")


def _ml_100k(root: Path) -> InteractionLog:
    from seqlens.data.readers import read_movielens

    log = _with_attributes(read_movielens(root / "ml-100k" / "u.data"), root / "ml-100k" / "u.item")
    return _with_users(log, root / "ml-100k" / "u.user")


def _sequences(path: str, attributes: str) -> Callable[[Path], InteractionLog]:
    def read(root: Path) -> InteractionLog:
        from seqlens.data.readers import read_sequences

        return _with_attributes(read_sequences(root / path), root / attributes)

    return read


def _diginetica(root: Path) -> InteractionLog:  # anonymous sessions: each session is a "user"
    from seqlens.data.readers import read_interactions

    path = root / "diginetica-sample" / "sample_train-item-views.csv"
    return read_interactions(path, user="session_id", item="item_id", time="timeframe", sep=";")


DATASETS: dict[str, Dataset] = {
    "beauty": Dataset("beauty/Beauty_item.txt", _beauty, "Amazon Beauty, 5-core sequences with timestamps"),
    "ml-1m": Dataset("ml-1m/ratings_users_1-2999.dat.gz", _ml_1m, "MovieLens-1M, users 1-2999, with titles"),
    "ml-100k": Dataset("ml-100k/u.data", _ml_100k, "MovieLens-100K"),
    "toys": Dataset(
        "toys/Toys_and_Games.txt",
        _sequences("toys/Toys_and_Games.txt", "toys/Toys_and_Games_item2attributes.json"),
        "Amazon Toys and Games, sequences",
    ),
    "lastfm": Dataset(
        "lastfm/LastFM.txt", _sequences("lastfm/LastFM.txt", "lastfm/LastFM_item2attributes.json"), "LastFM, sequences"
    ),
    "diginetica-sample": Dataset(
        "diginetica-sample/sample_train-item-views.csv",
        _diginetica,
        "a sample of Diginetica item views, sessions as users",
    ),  # fmt: skip
}


def data_root(root: str | Path | None = None) -> Path:
    """`root`, else $SEQLENS_DATA; a DataError says how to set it when neither is given."""
    given = root if root is not None else os.environ.get(ROOT_VARIABLE)
    if not given:
        raise DataError(
            f"no data root: pass root= (--data-root) or set {ROOT_VARIABLE} to the folder holding the datasets"
        )
    return Path(given)


def dataset_available(name: str, root: str | Path | None = None) -> bool:
    """Whether `name`'s main file is under the root (False, not an error, when no root is configured)."""
    try:
        return (data_root(root) / _dataset(name).path).is_file()
    except DataError:
        return False


def load_dataset(name: str, root: str | Path | None = None) -> InteractionLog:
    """The interaction log of dataset `name` (see `DATASETS`) read from under `root` (or $SEQLENS_DATA)."""
    dataset = _dataset(name)
    base = data_root(root)
    if not (base / dataset.path).is_file():
        raise DataError(f"{base / dataset.path}: missing; {name} ({dataset.about}) is not under the data root {base}")
    return dataset.read(base)


def _dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]
