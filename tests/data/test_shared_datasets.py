"""The real datasets in ../shared/data read with the documented counts (skipped where the folder is absent)."""

from pathlib import Path

import pytest

import seqlens

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def need(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the licensed datasets live in ../shared/data and are not redistributed")
    return path


def test_beauty_counts_and_timestamps():
    folder = need("beauty")
    log = seqlens.read_sequences(folder / "Beauty_item.txt", timestamps=folder / "Beauty_time.txt")
    assert (len(log), log.n_users, log.n_items) == (198_502, 22_363, 12_101)
    first = log.sequences()["1"]
    assert first == ["7873", "6846", "4585", "1", "5406"]  # file order kept within same-day ties
    split = seqlens.leave_one_out(log)
    assert len(split.test) == len(split.valid) == 22_363


def test_movielens_1m_partial_counts_and_titles():
    path = need("ml-1m", "ratings_users_1-2999.dat.gz")
    log = seqlens.read_movielens(path)
    assert (len(log), log.n_users, log.n_items) == (487_650, 2_999, 3_615)
    assert log.titles()["1"] == "Toy Story (1995)"
    times = log.df[log.df["user_id"] == "1"]["timestamp"].to_numpy()
    assert (times[1:] >= times[:-1]).all()


def test_movielens_100k_reads():
    log = seqlens.read_movielens(need("ml-100k", "u.data"))
    assert (len(log), log.n_users, log.n_items) == (100_000, 943, 1_682)
