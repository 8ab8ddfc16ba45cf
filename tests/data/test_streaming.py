"""Reading each user's most recent interactions batch by batch: the same log as reading everything and trimming,
from a Parquet file, a directory of them or a CSV, with the readers' errors, and never holding much more than
the rows kept."""

import numpy as np
import pandas as pd
import pytest

import seqlens
from seqlens.data import streaming
from seqlens.errors import DataError


def _frame(n=3000, users=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, users, n),
            "item_id": rng.integers(0, 500, n),
            "timestamp": rng.integers(0, 200, n),  # many ties: the file's order decides among them
        }
    )


def _trimmed(log: seqlens.InteractionLog, keep: int) -> pd.DataFrame:
    return log.df.groupby("user_id", sort=False).tail(keep).reset_index(drop=True)


@pytest.mark.parametrize("keep", [1, 5, 1000])
def test_parquet_streamed_is_the_full_log_trimmed(tmp_path, monkeypatch, keep):
    monkeypatch.setattr(streaming, "BATCH_ROWS", 256)  # many batches
    path = tmp_path / "log.parquet"
    _frame().to_parquet(path)
    streamed = seqlens.read_interactions(path, keep_last=keep)
    pd.testing.assert_frame_equal(streamed.df, _trimmed(seqlens.read_interactions(path), keep))


def test_a_directory_of_parquet_files_as_spark_writes_it(tmp_path):
    frame = _frame()
    folder = tmp_path / "events"
    folder.mkdir()
    for k, lo in enumerate(range(0, len(frame), 1000)):
        frame.iloc[lo : lo + 1000].to_parquet(folder / f"part-{k:05d}.parquet")
    (folder / "_SUCCESS").write_text("")
    whole = tmp_path / "whole.parquet"
    frame.to_parquet(whole)
    expected = _trimmed(seqlens.read_interactions(whole), 4)
    pd.testing.assert_frame_equal(seqlens.read_interactions(folder, keep_last=4).df, expected)
    pd.testing.assert_frame_equal(seqlens.read_interactions(folder).df, seqlens.read_interactions(whole).df)


def test_csv_ids_stay_as_written_and_dates_are_read(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n007,01,2024-01-02\n007,02,2024-01-01\n8,01,2024-01-03\n")
    log = seqlens.read_interactions(path, keep_last=1)
    assert log.df[["user_id", "item_id"]].values.tolist() == [["007", "01"], ["8", "01"]]


def test_errors_name_the_file_row_and_column(tmp_path):
    path = tmp_path / "log.parquet"
    frame = _frame(50).astype({"item_id": "object"})
    frame.loc[31, "item_id"] = None
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"log.parquet: row 32, column 'item_id': empty value"):
        seqlens.read_interactions(path, keep_last=3)
    with pytest.raises(DataError, match=r"missing column 'when'"):
        seqlens.read_interactions(path, time="when", keep_last=3)
    with pytest.raises(DataError, match=r"no such file"):
        seqlens.read_interactions(tmp_path / "absent.parquet", keep_last=3)
    with pytest.raises(DataError, match=r"keep_last must be a positive"):
        seqlens.read_interactions(path, keep_last=0)
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\n1,2,3\n1,3,yesterday\n")
    with pytest.raises(DataError, match=r"row 2, column 'timestamp': value 'yesterday' is neither a number nor a date"):
        seqlens.read_interactions(bad, keep_last=3)


def test_memory_is_bounded_by_the_rows_kept(tmp_path, monkeypatch):
    """Between trims the reader holds at most about twice what it keeps plus one batch, whatever the file's size."""
    monkeypatch.setattr(streaming, "BATCH_ROWS", 100)
    held = []
    trim = streaming._last_per_user
    monkeypatch.setattr(streaming, "_last_per_user", lambda frame, keep: held.append(len(frame)) or trim(frame, keep))
    path = tmp_path / "log.parquet"
    _frame(n=20_000, users=30).to_parquet(path)
    log = seqlens.read_interactions(path, keep_last=5)
    assert len(log) == 150
    assert len(held) > 10 and max(held) <= 2 * 150 + 2 * 100
