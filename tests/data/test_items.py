"""Item attribute tables: every format, bands, clear errors, and a log that keeps them through its operations."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import seqlens
from seqlens.errors import DataError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_csv_with_categorical_multi_and_numeric_bands(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("sku,brand,tags,price\na,acme,x|y,1.0\nb,acme,,2.0\nc,zeta,y,3.0\nd,zeta,z|x,40.0\n")
    table = seqlens.read_items(path, item="sku", categorical=["brand"], multi=["tags"], numeric=["price"], bands=2)
    rows = table.frame.set_index("item_id")
    assert rows.loc["a", "tags"] == ("x", "y") and rows.loc["b", "tags"] == ()
    assert rows["price"].tolist() == ["band 1 of 2", "band 1 of 2", "band 2 of 2", "band 2 of 2"]
    assert table.bands["price"] == [1.0, 2.5, 40.0]
    assert table.categorical == ("brand", "price") and table.multi == ("tags",)
    assert table.vocabulary("tags") == ["x", "y", "z"] and table.vocabulary("brand") == ["acme", "zeta"]


def test_item2attributes_json_records_json_and_parquet(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"1": [3, 4], "2": [4]}))
    table = seqlens.read_items(tmp_path / "a.json")
    assert table.multi == ("attributes",) and table.frame["attributes"].tolist() == [("3", "4"), ("4",)]
    (tmp_path / "r.json").write_text(json.dumps([{"item_id": 1, "brand": "acme"}, {"item_id": 2, "brand": "z"}]))
    assert seqlens.read_items(tmp_path / "r.json", categorical=["brand"]).frame["brand"].tolist() == ["acme", "z"]
    pd.DataFrame({"item_id": ["1"], "cat": [["p", "q"]]}).to_parquet(tmp_path / "t.parquet")
    assert seqlens.read_items(tmp_path / "t.parquet", multi=["cat"]).frame["cat"].iloc[0] == ("p", "q")


def test_movielens_genres(tmp_path):
    (tmp_path / "movies.dat").write_text("1::Toy Story (1995)::Animation|Comedy\n2::Heat (1995)::Action\n")
    table = seqlens.read_items(tmp_path / "movies.dat")
    assert table.multi == ("genres",) and table.frame["genres"].tolist() == [("Animation", "Comedy"), ("Action",)]
    assert table.frame["title"].iloc[1] == "Heat (1995)"


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("sku,brand\na,x\n", dict(categorical=["brand"]), "missing column 'item_id'"),
        ("item_id,brand\na,x\n", dict(categorical=["colour"]), "missing column 'colour'"),
        ("item_id,brand\na,x\nb,\n", dict(categorical=["brand"]), "row 2, column 'brand': empty value"),
        ("item_id,brand\na,x\na,y\n", dict(categorical=["brand"]), "row 2: item id 'a' appears twice"),
        ("item_id,price\na,1\nb,cheap\n", dict(numeric=["price"]), "row 2, column 'price': 'cheap' is not a number"),
        ("item_id,price\na,1\n", dict(numeric=["price"], bands=1), "bands=1 must be at least 2"),
    ],
)
def test_bad_tables_name_file_row_column_and_value(tmp_path, text, options, message):
    path = tmp_path / "items.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        seqlens.read_items(path, **options)


def test_a_log_keeps_its_attributes_and_reports_cold_items():
    log = seqlens.synthetic_log(n_users=30, seed=0)
    ids = sorted(log.df["item_id"].unique())
    frame = pd.DataFrame({"item_id": [*ids[:-1], "never-seen"], "genre": ["g"] * len(ids)})
    with_items = log.with_items(seqlens.read_items(frame, categorical=["genre"]))
    assert f"attributes for {len(ids) - 1} of them (+1 cold items)" in repr(with_items)
    split = seqlens.leave_one_out(with_items)
    assert split.train.attributes is with_items.attributes and split.test.attributes is with_items.attributes
    assert split.train.concat(split.valid).attributes is with_items.attributes
    assert with_items.titles() == log.titles()  # the log's titles stay


def test_shared_attribute_files_read():
    beauty, movies = DATA / "beauty" / "Beauty_item2attributes.json", DATA / "ml-1m" / "movies.dat"
    if not beauty.exists() or not movies.exists():
        pytest.skip(f"{DATA} lacks the licensed attribute files: they are not redistributed")
    table = seqlens.read_items(beauty)
    assert len(table) == 12_101 and len(table.vocabulary("attributes")) == 637
    genres = seqlens.read_items(movies)
    assert len(genres) == 3_883 and "Film-Noir" in genres.vocabulary("genres")


def test_context_columns_are_kept_per_event_through_splits(tmp_path):
    path = tmp_path / "events.csv"
    rows = [f"u{u},i{(u + t) % 7},{100 * t},{'mobile' if t % 2 else 'web'}" for u in range(4) for t in range(5)]
    path.write_text("user_id,item_id,timestamp,device\n" + "\n".join(rows) + "\n")
    log = seqlens.read_interactions(path, context=["device"])
    assert log.context == ("device",) and set(log.df["device"]) == {"mobile", "web"}
    split = seqlens.leave_one_out(log)
    assert split.test.context == ("device",) and split.test.df["device"].tolist() == ["web"] * 4
    assert split.train.concat(split.valid).context == ("device",)
    assert seqlens.read_interactions(path).context == ()  # nothing kept unless named


@pytest.mark.parametrize(
    "header, row, context, message",
    [
        ("user_id,item_id,device", "u1,i1,", ["device"], r":2, column 'device': empty value"),
        ("user_id,item_id", "u1,i1", ["device"], "missing column 'device'"),
        ("user_id,item_id,timestamp", "u1,i1,5", ["timestamp"], "context column 'timestamp' is already"),
    ],
)
def test_bad_context_columns_are_named(tmp_path, header, row, context, message):
    path = tmp_path / "events.csv"
    path.write_text(f"{header}\n{row}\n")
    with pytest.raises(DataError, match=message):
        seqlens.read_interactions(path, time="timestamp" if "timestamp" in header else None, context=context)


def test_numeric_bands_at_given_edges_match_the_quantile_bands_they_came_from():
    frame = pd.DataFrame({"item_id": list("abcdef"), "price": [1, 2, 3, 4, 5, 6]})
    quantiles = seqlens.read_items(frame, numeric=["price"], bands=3)
    again = seqlens.read_items(frame, numeric=["price"], edges=quantiles.bands)
    assert again.frame["price"].tolist() == quantiles.frame["price"].tolist() and again.bands == quantiles.bands
    beyond = seqlens.read_items(pd.DataFrame({"item_id": ["x", "y"], "price": [-5, 99]}), numeric=["price"],
                                edges=quantiles.bands)  # fmt: skip
    assert beyond.frame["price"].tolist() == ["band 1 of 3", "band 3 of 3"]
    with pytest.raises(DataError, match="must be at least two numbers in order"):
        seqlens.read_items(frame, numeric=["price"], edges={"price": [3, 1]})
    with pytest.raises(DataError, match="edges given for 'brand'"):
        seqlens.read_items(frame, numeric=["price"], edges={"brand": [0, 1]})


def test_a_numeric_column_of_one_value_is_one_band():
    table = seqlens.read_items(pd.DataFrame({"item_id": ["a", "b"], "price": [3.5, 3.5]}), numeric=["price"])
    assert table.frame["price"].tolist() == ["band 1 of 1"] * 2 and table.bands["price"] == [3.5, 3.5]
    again = seqlens.read_items(pd.DataFrame({"item_id": ["c"], "price": [9]}), numeric=["price"], edges=table.bands)
    assert again.frame["price"].tolist() == ["band 1 of 1"]
