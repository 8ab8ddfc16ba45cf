"""Splits: leave-one-out, global temporal, and k-core filtering, by hand and as properties."""

from __future__ import annotations

import warnings
from collections import Counter

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqlens import leave_one_out, temporal_split
from seqlens.data.log import InteractionLog
from seqlens.errors import DataError


def rows_of(log):
    return list(log.df.itertuples(index=False, name=None))


# --- leave-one-out by hand ------------------------------------------------------------------------
def test_leave_one_out_exact_rows(tiny_log):
    with pytest.warns(UserWarning, match="1 users with fewer than 3"):
        split = leave_one_out(tiny_log)
    assert rows_of(split.train) == [("u1", "a", 1), ("u1", "b", 2), ("u2", "x", 5), ("u3", "p", 1), ("u3", "q", 2)]
    assert rows_of(split.valid) == [("u1", "c", 3), ("u2", "y", 6)]
    assert rows_of(split.test) == [("u1", "d", 4), ("u2", "z", 7)]


def test_test_history_is_train_plus_valid(tiny_log):
    with pytest.warns(UserWarning):
        split = leave_one_out(tiny_log)
    assert rows_of(split.test_history) == [
        ("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u2", "x", 5), ("u2", "y", 6), ("u3", "p", 1), ("u3", "q", 2),
    ]  # fmt: skip


def test_leave_one_out_no_warning_when_everyone_is_long_enough(make_log):
    log = make_log([("u", "a", 1), ("u", "b", 2), ("u", "c", 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = leave_one_out(log)
    assert rows_of(split.test) == [("u", "c", 3)]


def test_leave_one_out_min_len_and_no_eligible_user(make_log):
    log = make_log([("u", "a", 1), ("u", "b", 2), ("v", "c", 1)])
    with pytest.raises(DataError, match="leave-one-out needs 3"):
        leave_one_out(log)
    with pytest.warns(UserWarning, match="1 users"):
        split = leave_one_out(log, min_len=2)
    assert rows_of(split.train) == [("v", "c", 1)]
    assert rows_of(split.valid) == [("u", "a", 1)]
    assert rows_of(split.test) == [("u", "b", 2)]


def test_leave_one_out_uses_time_not_file_order(make_log):
    log = make_log([("u", "late", 9), ("u", "early", 1), ("u", "mid", 5), ("u", "tie1", 7), ("u", "tie2", 7)])
    split = leave_one_out(log)
    assert rows_of(split.train) == [("u", "early", 1), ("u", "mid", 5), ("u", "tie1", 7)]
    assert rows_of(split.valid) == [("u", "tie2", 7)]
    assert rows_of(split.test) == [("u", "late", 9)]


# --- leave-one-out properties ---------------------------------------------------------------------
logs = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 3)),  # (user, item, time): many ties
    min_size=1,
    max_size=30,
)


def build(rows, with_time):
    """A log whose items carry their original row number, so every row can be traced through a split."""
    df = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u, _, _ in rows],
            "item_id": [f"i{i}#{n}" for n, (_, i, _) in enumerate(rows)],
            "timestamp": [t for _, _, t in rows],
        }
    )
    if not with_time:
        df = df.drop(columns="timestamp")
    return InteractionLog.from_frame(df), df


def order_key(df, with_time):
    """The position of each row in its user's true order: (time, original row)."""
    row = df["item_id"].str.split("#").str[1].astype(int)
    return list(zip(df["timestamp"], row)) if with_time else list(zip(row, row))


@given(rows=logs, with_time=st.booleans())
def test_leave_one_out_properties(rows, with_time):
    log, original = build(rows, with_time)
    counts = Counter(u for u, _, _ in rows)
    if max(counts.values()) < 3:
        with pytest.raises(DataError):
            leave_one_out(log)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = leave_one_out(log)

    # nothing lost, nothing duplicated
    def multiset(df):
        return Counter(map(tuple, df[list(original.columns)].itertuples(index=False, name=None)))

    together = pd.concat([split.train.df, split.valid.df, split.test.df])
    assert multiset(together) == multiset(original)

    eligible = {f"u{u}" for u, n in counts.items() if n >= 3}
    assert set(split.valid.df["user_id"]) == eligible == set(split.test.df["user_id"])
    assert len(split.valid) == len(split.test) == len(eligible)
    for user, group in original.groupby("user_id"):
        keys = sorted(order_key(group, with_time))
        train_keys = order_key(split.train.df[split.train.df["user_id"] == user], with_time)
        if user not in eligible:
            assert sorted(train_keys) == keys  # short users stay whole in train
            continue
        (valid_key,) = order_key(split.valid.df[split.valid.df["user_id"] == user], with_time)
        (test_key,) = order_key(split.test.df[split.test.df["user_id"] == user], with_time)
        assert test_key == keys[-1] and valid_key == keys[-2]
        assert all(k < valid_key for k in train_keys)  # no leakage: every train row precedes the targets
        assert train_keys == keys[:-2]  # and train keeps the user's order


# --- temporal split -------------------------------------------------------------------------------
def test_temporal_split_by_hand(make_log):
    log = make_log(
        [
            ("u1", "a", 1), ("u1", "b", 5), ("u1", "c", 12), ("u1", "d", 15),  # tested, with validation
            ("u2", "e", 2), ("u2", "f", 3),  # nothing after the cutoff: train only
            ("u3", "g", 11), ("u3", "h", 20),  # nothing before: dropped
            ("u4", "i", 4), ("u4", "j", 10),  # one before, first at the cutoff itself is the test target
        ]
    )  # fmt: skip
    split = temporal_split(log, cutoff=10)
    assert rows_of(split.train) == [("u1", "a", 1), ("u2", "e", 2), ("u2", "f", 3), ("u4", "i", 4)]
    assert rows_of(split.valid) == [("u1", "b", 5)]
    assert rows_of(split.test) == [("u1", "c", 12), ("u4", "j", 10)]


def test_temporal_split_needs_timestamps(make_log):
    log = make_log([("u", "a"), ("u", "b")], with_time=False)
    with pytest.raises(DataError, match="needs timestamps"):
        temporal_split(log)


def test_temporal_split_cutoff_outside_the_data(make_log):
    log = make_log([("u", "a", 1), ("u", "b", 2)])
    for cutoff in (0, 1, 3):
        with pytest.raises(DataError, match="cutoff"):
            temporal_split(log, cutoff=cutoff)


@given(rows=logs, cutoff=st.integers(0, 4))
def test_temporal_split_properties(rows, cutoff):
    log, original = build(rows, True)
    t = original["timestamp"]
    if (t < cutoff).all() or (t >= cutoff).all():
        with pytest.raises(DataError):
            temporal_split(log, cutoff=cutoff)
        return
    expected_test, expected_valid = {}, {}
    for user, group in original.groupby("user_id"):
        keys = sorted(order_key(group, True))
        before = [k for k in keys if k[0] < cutoff]
        if before and len(before) < len(keys):
            expected_test[user] = keys[len(before)]
            if len(before) >= 2:
                expected_valid[user] = before[-1]
    if not expected_test:
        with pytest.raises(DataError):
            temporal_split(log, cutoff=cutoff)
        return
    split = temporal_split(log, cutoff=cutoff)
    assert (split.train.df["timestamp"] < cutoff).all()
    assert (split.valid.df["timestamp"] < cutoff).all()
    test = split.test.df
    assert dict(zip(test["user_id"], order_key(test, True))) == expected_test
    assert dict(zip(split.valid.df["user_id"], order_key(split.valid.df, True))) == expected_valid
    # no leakage: each valid target precedes the user's test target and follows all their train rows
    for user, vkey in zip(split.valid.df["user_id"], order_key(split.valid.df, True)):
        assert vkey < expected_test[user]
        train_keys = order_key(split.train.df[split.train.df["user_id"] == user], True)
        assert train_keys and all(k < vkey for k in train_keys)
    # train + valid is exactly what came before the cutoff
    before = original[original["timestamp"] < cutoff]
    got = pd.concat([split.train.df, split.valid.df])
    assert sorted(got["item_id"]) == sorted(before["item_id"])


# --- k-core ---------------------------------------------------------------------------------------
def reference_kcore(rows, user_k, item_k):
    """Peel one offending row-set at a time until nothing changes; the k-core is the unique fixpoint."""
    rows = list(rows)
    while True:
        users, items = Counter(r[0] for r in rows), Counter(r[1] for r in rows)
        bad_users = {u for u, n in users.items() if n < user_k}
        if bad_users:
            rows = [r for r in rows if r[0] not in bad_users]
            continue
        bad_items = {i for i, n in items.items() if n < item_k}
        if bad_items:
            rows = [r for r in rows if r[1] not in bad_items]
            continue
        return rows


@given(
    rows=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 9)), min_size=1, max_size=60),
    user_k=st.integers(1, 4),
    item_k=st.integers(1, 4),
)
def test_kcore_is_the_k_core(rows, user_k, item_k):
    df = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u, _, _ in rows],
            "item_id": [f"i{i}" for _, i, _ in rows],
            "timestamp": [t for *_, t in rows],
        }
    )
    log = InteractionLog.from_frame(df)
    expected = reference_kcore(list(df.itertuples(index=False, name=None)), user_k, item_k)
    if not expected:
        with pytest.raises(DataError, match="core"):
            log.kcore(user_k, item_k)
        return
    core = log.kcore(user_k, item_k)
    assert (core.df["user_id"].value_counts() >= user_k).all()
    assert (core.df["item_id"].value_counts() >= item_k).all()
    assert Counter(core.df.itertuples(index=False, name=None)) == Counter(expected)
    # still sorted by user, then time
    assert rows_of(core) == rows_of(InteractionLog.from_frame(core.df))
