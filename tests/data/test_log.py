"""InteractionLog: normalisation, ordering, views, and the content fingerprint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqlens.data.log import InteractionLog, group_bounds
from seqlens.errors import DataError


def test_from_frame_normalises_and_sorts():
    df = pd.DataFrame(
        {"user_id": [2, 10, 2, 2], "item_id": [5, 6, 7, 8], "timestamp": [3, 1, 1, 3], "extra": list("abcd")}
    )
    log = InteractionLog.from_frame(df)
    assert list(log.df.columns) == ["user_id", "item_id", "timestamp"]
    # users sorted as strings ("10" < "2"), then by time, ties in given order
    assert list(log.df.itertuples(index=False, name=None)) == [
        ("10", "6", 1),
        ("2", "7", 1),
        ("2", "5", 3),
        ("2", "8", 3),
    ]
    assert (log.n_users, log.n_items, len(log)) == (2, 4, 4)
    assert log.sequences() == {"10": ["6"], "2": ["7", "5", "8"]}
    assert df["user_id"].tolist() == [2, 10, 2, 2]  # the input frame is not modified


@pytest.mark.parametrize(
    "df,match",
    [
        (pd.DataFrame({"user_id": ["u"]}), "missing column 'item_id'"),
        (pd.DataFrame({"user_id": [], "item_id": []}), "no interactions"),
        (pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", None]}), "row 2, column 'item_id': empty value"),
        (pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [1.5]}), "integer seconds"),
    ],
)
def test_from_frame_errors(df, match):
    with pytest.raises(DataError, match=match):
        InteractionLog.from_frame(df, source="my.csv")


def test_concat_resorts_and_checks_timestamps(make_log):
    a = make_log([("u", "x", 5), ("v", "y", 1)])
    b = make_log([("u", "z", 2)])
    assert a.concat(b).sequences() == {"u": ["z", "x"], "v": ["y"]}
    with pytest.raises(DataError, match="timestamps"):
        a.concat(make_log([("u", "z")], with_time=False))


def test_filter_users_and_titles(make_log):
    log = InteractionLog.from_frame(
        pd.DataFrame({"user_id": ["u", "v", "u"], "item_id": [1, 2, 3]}),
        items=pd.DataFrame({"item_id": [1, 1, 2], "title": ["One", "Dup", "Two"]}),
    )
    assert log.filter_users(["v"]).sequences() == {"v": ["2"]}
    assert log.titles() == {"1": "One", "2": "Two"}
    assert make_log([("u", "a", 1)]).titles() == {}


def test_fingerprint_is_content_based(make_log):
    rows = [("u", "a", 1), ("u", "b", 2)]
    assert make_log(rows).fingerprint() == make_log(list(reversed(rows))).fingerprint()  # same sorted content
    assert make_log(rows).fingerprint() != make_log([("u", "a", 1), ("u", "b", 3)]).fingerprint()
    assert make_log(rows).fingerprint() != make_log([("u", "a", 1), ("u", "c", 2)]).fingerprint()
    assert len(make_log(rows).fingerprint()) == 16


def test_group_bounds():
    keys, starts, lengths = group_bounds(np.array(["a", "a", "b", "c", "c", "c"]))
    assert keys.tolist() == ["a", "b", "c"] and starts.tolist() == [0, 2, 3] and lengths.tolist() == [2, 1, 3]
    keys, starts, lengths = group_bounds(np.array([], dtype=object))
    assert len(keys) == len(starts) == len(lengths) == 0


def test_datetimes_and_rectools_datetime_column_are_read_as_seconds():
    times = pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-03"])
    df = pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["b", "a", "c"], "datetime": times, "weight": 1.0})
    log = InteractionLog.from_frame(df)
    assert log.df["item_id"].tolist() == ["a", "b", "c"]  # ordered by time, not file order
    assert log.df["timestamp"].iloc[0] == int(pd.Timestamp("2024-01-01").timestamp())
    aware = df.assign(datetime=times.tz_localize("Europe/Berlin")).rename(columns={"datetime": "timestamp"})
    assert InteractionLog.from_frame(aware).df["timestamp"].iloc[0] == int(pd.Timestamp("2023-12-31 23:00").timestamp())


def test_a_time_column_that_is_not_read_is_named_in_a_warning():
    df = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "event_time": [2, 1]})
    with pytest.warns(UserWarning, match="'event_time' look like times but are ignored"):
        InteractionLog.from_frame(df)


@pytest.mark.parametrize("bad", [float("inf"), 1e30, 1.5, True])
@pytest.mark.fault
def test_bad_times_are_refused_naming_the_row(bad):
    df = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [1.0, bad]})
    if isinstance(bad, bool):
        df["timestamp"] = [False, True]
    with pytest.raises(DataError, match="timestamp"):
        InteractionLog.from_frame(df)
