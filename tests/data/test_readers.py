"""Readers: tables (CSV/TSV/Parquet/DataFrame), MovieLens `.dat`, one-sequence-per-line files."""

from __future__ import annotations

import gzip
import re

import pandas as pd
import pytest

from seqlens import read_interactions, read_log, read_movielens, read_sequences
from seqlens.errors import DataError

TABLE = "user_id,item_id,timestamp\nu1,i1,30\nu2,i1,20\nu1,i2,10\nu1,i3,30\n"


def rows_of(log):
    return list(log.df.itertuples(index=False, name=None))


# --- tables ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix,sep", [(".csv", ","), (".tsv", "\t")])
def test_read_delimited_sorts_by_user_then_time_keeping_file_order_on_ties(tmp_path, suffix, sep):
    path = tmp_path / f"log{suffix}"
    path.write_text(TABLE.replace(",", sep))
    log = read_interactions(path)
    # u1: i2 (t=10), then i1 and i3 (both t=30, file order kept); then u2
    assert rows_of(log) == [("u1", "i2", 10), ("u1", "i1", 30), ("u1", "i3", 30), ("u2", "i1", 20)]
    assert log.source == str(path)
    assert log.n_users == 2 and log.n_items == 3


def test_read_parquet_and_dataframe_give_string_ids(tmp_path):
    df = pd.DataFrame({"user_id": [7, 7, 3], "item_id": [100, 7, 100], "timestamp": [2, 1, 5]})
    path = tmp_path / "log.parquet"
    df.to_parquet(path)
    for source in (path, df):
        log = read_interactions(source)
        assert rows_of(log) == [("3", "100", 5), ("7", "7", 1), ("7", "100", 2)]
        assert all(isinstance(v, str) for v in log.df["user_id"]) and all(isinstance(v, str) for v in log.df["item_id"])
        assert log.df["timestamp"].dtype == "int64"


def test_ids_keep_their_text_exactly(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n007,0012,1\n7,12,2\n")
    log = read_interactions(path)
    assert set(log.df["user_id"]) == {"007", "7"}
    assert set(log.df["item_id"]) == {"0012", "12"}


def test_custom_column_names_and_extra_columns(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("ts,who,what,rating\n5,a,x,1\n3,a,y,2\n4,b,x,3\n")
    log = read_interactions(path, user="who", item="what", time="ts")
    assert list(log.df.columns) == ["user_id", "item_id", "timestamp"]
    assert rows_of(log) == [("a", "y", 3), ("a", "x", 5), ("b", "x", 4)]


def test_no_time_column_keeps_file_order(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id\nb,3\na,9\nb,1\na,2\n")
    log = read_interactions(path, time=None)
    assert not log.has_time
    assert log.sequences() == {"a": ["9", "2"], "b": ["3", "1"]}


def test_explicit_separator(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("user_id;item_id;timestamp\nu;i;1\nu;j;0\n")
    assert rows_of(read_interactions(path, sep=";")) == [("u", "j", 0), ("u", "i", 1)]


def test_date_string_and_float_timestamps(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu,a,2020-01-02\nu,b,2020-01-01T00:00:10Z\nv,c,2020-01-01\n")
    assert rows_of(read_interactions(path)) == [
        ("u", "b", 1577836810),
        ("u", "a", 1577923200),
        ("v", "c", 1577836800),
    ]
    path.write_text("user_id,item_id,timestamp\nu,a,2.9\nu,b,1.5\n")
    assert rows_of(read_interactions(path)) == [("u", "b", 1), ("u", "a", 2)]


def test_parquet_datetime_column_becomes_seconds(tmp_path):
    df = pd.DataFrame(
        {"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": pd.to_datetime(["2020-01-02", "2020-01-01"])}
    )
    path = tmp_path / "log.parquet"
    df.to_parquet(path)
    assert rows_of(read_interactions(path)) == [("u", "b", 1577836800), ("u", "a", 1577923200)]


# --- table errors ---------------------------------------------------------------------------------
def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item,timestamp\nu,a,1\n")
    with pytest.raises(DataError, match=re.escape(str(path))) as e:
        read_interactions(path)
    assert "'item_id'" in str(e.value) and "item" in str(e.value)


def test_missing_time_column_is_an_error_unless_time_none(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id\nu,a\n")
    with pytest.raises(DataError, match="'timestamp'"):
        read_interactions(path)
    assert len(read_interactions(path, time=None)) == 1


def test_non_numeric_timestamp_reports_the_file_line(tmp_path):
    path = tmp_path / "log.csv"
    # header = line 1, so the bad value on the fourth data row is on line 5
    path.write_text("user_id,item_id,timestamp\nu,a,1\nu,b,2\nv,c,3\nv,d,soon\nv,e,4\n")
    with pytest.raises(DataError) as e:
        read_interactions(path)
    msg = str(e.value)
    assert f"{path}:5," in msg
    assert "'soon'" in msg and "'timestamp'" in msg


def test_line_numbers_stay_right_after_a_blank_line(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu,a,1\n\nu,b,oops\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:4,")):
        read_interactions(path)


def test_empty_file_and_header_only_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=re.escape(str(empty)) + ".*empty"):
        read_interactions(empty)
    header = tmp_path / "header.csv"
    header.write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match=re.escape(str(header)) + ".*no interactions"):
        read_interactions(header)


@pytest.mark.parametrize("column,line,text", [("item_id", 3, "u,a,1\nu,,2\n"), ("user_id", 2, ",a,1\nu,b,2\n")])
def test_empty_id_value_names_line_and_column(tmp_path, column, line, text):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n" + text)
    with pytest.raises(DataError) as e:
        read_interactions(path)
    assert f"{path}:{line}," in str(e.value) and repr(column) in str(e.value) and "empty" in str(e.value)


def test_empty_timestamp_names_line(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu,a,1\nu,b,\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3,") + ".*timestamp"):
        read_interactions(path)


def test_dataframe_errors_name_the_row():
    df = pd.DataFrame({"user_id": ["u", None], "item_id": ["a", "b"], "timestamp": [1, 2]})
    with pytest.raises(DataError, match=r"<dataframe>: row 2, column 'user_id'"):
        read_interactions(df)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_interactions(tmp_path / "nope.csv")


# --- MovieLens ------------------------------------------------------------------------------------
RATINGS = "1::10::5::978300760\n1::20::3::978300700\n2::10::4::978300800\n"
MOVIES = "10::Toy Story (1995)::Animation|Children's\n20::Jumanji (1995)::Adventure\n"


def check_movielens(log):
    assert rows_of(log) == [("1", "20", 978300700), ("1", "10", 978300760), ("2", "10", 978300800)]
    assert log.titles() == {"10": "Toy Story (1995)", "20": "Jumanji (1995)"}


def test_read_movielens_with_titles_next_to_it(tmp_path):
    (tmp_path / "ratings.dat").write_text(RATINGS)
    (tmp_path / "movies.dat").write_text(MOVIES)
    check_movielens(read_movielens(tmp_path / "ratings.dat"))
    check_movielens(read_log(tmp_path / "ratings.dat"))  # format="auto" picks MovieLens for *.dat


def test_read_movielens_gzip(tmp_path):
    with gzip.open(tmp_path / "ratings.dat.gz", "wt") as f:
        f.write(RATINGS)
    (tmp_path / "movies.dat").write_text(MOVIES)
    check_movielens(read_movielens(tmp_path / "ratings.dat.gz"))


def test_read_ml100k_u_data_with_u_item(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t978300760\n1\t20\t3\t978300700\n2\t10\t4\t978300800\n")
    (tmp_path / "u.item").write_text(
        "10|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1\n20|Jumanji (1995)|01-Jan-1995||http://y|0|0|1|0|0|0\n"
    )
    log = read_log(tmp_path / "u.data")
    check_movielens(log)
    assert dict(zip(log.items["item_id"], log.items["genres"])) == {
        "10": "Animation|Children's|Comedy",
        "20": "Adventure",
    }


def test_read_movielens_without_movies_file_has_no_titles(tmp_path):
    (tmp_path / "ratings.dat").write_text(RATINGS)
    assert read_movielens(tmp_path / "ratings.dat").titles() == {}


def test_movielens_short_line_names_file_line(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::5::978300760\n1::20::3\n2::10::4::978300800\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2")):
        read_movielens(path)


@pytest.mark.parametrize("bad", ["1::20::3", "1::20::3::978300700::9"], ids=["short", "long"])
def test_movielens_wrong_field_count_says_so_with_file_line(tmp_path, bad):
    path = tmp_path / "ratings.dat"
    path.write_text(f"1::10::5::978300760\n{bad}\n2::10::4::978300800\n")
    with pytest.raises(DataError) as e:
        read_movielens(path)
    assert f"{path}:2" in str(e.value) and "4 fields" in str(e.value)


def test_movielens_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::5::978300760\n\n1::20::3::soon\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3,")):
        read_movielens(path)


def test_movielens_blank_and_crlf_lines_are_fine(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::5::978300760\r\n\r\n1::20::3::978300700\r\n")
    assert rows_of(read_movielens(path)) == [("1", "20", 978300700), ("1", "10", 978300760)]


def test_movielens_non_integer_timestamp_names_file_line_and_value(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::5::978300760\n1::20::3::978300700\n2::10::4::yesterday\n")
    with pytest.raises(DataError) as e:
        read_movielens(path)
    assert f"{path}:3" in str(e.value) and "'yesterday'" in str(e.value) and "timestamp" in str(e.value)


def test_movielens_empty_file(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("\n")
    with pytest.raises(DataError, match="empty"):
        read_movielens(path)


# --- one sequence per line ------------------------------------------------------------------------
def test_read_sequences_without_timestamps_keeps_line_order(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("b 5 1 5\na 3 2\n")
    log = read_sequences(path)
    assert not log.has_time
    assert log.sequences() == {"a": ["3", "2"], "b": ["5", "1", "5"]}
    assert read_log(path).sequences() == log.sequences()


def test_read_sequences_with_timestamps_orders_by_time_and_keeps_ties(tmp_path):
    seqs, times = tmp_path / "seqs.txt", tmp_path / "times.txt"
    seqs.write_text("a 1 2 3\nb 4 5 6\n")
    times.write_text("a 30 10 20\nb 7 7 1\n")
    log = read_sequences(seqs, times)
    assert rows_of(log) == [
        ("a", "2", 10), ("a", "3", 20), ("a", "1", 30),
        ("b", "6", 1), ("b", "4", 7), ("b", "5", 7),
    ]  # fmt: skip


def test_timestamp_file_with_different_length_names_the_line(tmp_path):
    seqs, times = tmp_path / "seqs.txt", tmp_path / "times.txt"
    seqs.write_text("a 1 2 3\nb 4 5\nc 6 7\n")
    times.write_text("a 1 2 3\nb 4\nc 6 7\n")
    with pytest.raises(DataError) as e:
        read_sequences(seqs, times)
    assert f"{times}:2:" in str(e.value) and "'b'" in str(e.value)


def test_timestamp_file_with_different_user_or_line_count(tmp_path):
    seqs, times = tmp_path / "seqs.txt", tmp_path / "times.txt"
    seqs.write_text("a 1 2\nb 4 5\n")
    times.write_text("a 1 2\nc 4 5\n")
    with pytest.raises(DataError, match=re.escape(f"{times}:2:")):
        read_sequences(seqs, times)
    times.write_text("a 1 2\n")
    with pytest.raises(DataError, match=re.escape(str(times)) + ".*1 lines"):
        read_sequences(seqs, times)


def test_non_integer_timestamp_in_sequence_file_names_the_line(tmp_path):
    seqs, times = tmp_path / "seqs.txt", tmp_path / "times.txt"
    seqs.write_text("a 1 2\nb 4 5 6\n")
    times.write_text("a 1 2\nb 4 x5 6\n")
    with pytest.raises(DataError, match=re.escape(f"{times}:2:") + ".*'x5'"):
        read_sequences(seqs, times)


def test_sequence_errors_count_blank_lines(tmp_path):
    seqs, times = tmp_path / "seqs.txt", tmp_path / "times.txt"
    seqs.write_text("a 1 2\n\nb 3 4 5\n")
    times.write_text("a 1 2\n\nb 3 4\n")
    with pytest.raises(DataError, match=re.escape(f"{times}:3:")):
        read_sequences(seqs, times)


def test_sequence_line_without_items(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("a 1 2\nlonely\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2:") + ".*'lonely'"):
        read_sequences(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.dat", b"a:b::2::3::4\n1::2::3::4\n", "bad.dat:1: expected 4 fields"),
        ("bad_seq.txt", b"1 2 3\n2 \xff\xfe 4\n", "bad_seq.txt:2, column 3: byte 0xff is not UTF-8"),
        (
            "big.csv",
            b"user_id,item_id,timestamp\n1,2,3\n1,2,99999999999999999999999\n",
            "big.csv:3, column 'timestamp'",
        ),
        ("sup.csv", "user_id,item_id,timestamp\n1,2,\u00b2\n".encode(), "is neither a number nor a date"),
        ("arabic.csv", "user_id,item_id,timestamp\n1,2,\u0661\n".encode(), "only ASCII digits"),  # read as year 1
        (
            "cut.csv.gz",
            gzip.compress(b"user_id,item_id,timestamp\n1,2,3\n1,3,4\n")[:30],
            "compressed file is truncated",
        ),
        ("cut.txt.gz", gzip.compress(b"1 2 3\n2 3 4\n")[:25], "compressed file is truncated"),
    ],
)
@pytest.mark.fault
def test_broken_files_are_errors_naming_the_place_not_tracebacks(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        read_log(path)
