"""The glue of benchmarks/peers.py that needs no peer library: split files and scoring of top-K lists."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import seqlens


@pytest.fixture(scope="module")
def peers():
    from benchmarks import peers

    return peers


def test_split_files_keep_seqlens_order(peers, synth_split, tmp_path):
    split = synth_split
    peers.write_split(split, tmp_path)
    parts = {
        n: pd.read_csv(tmp_path / f"{n}.csv", dtype={"user_id": str, "item_id": str})
        for n in ("train", "valid", "test")
    }
    allrows = pd.concat([df.assign(part=n) for n, df in parts.items()]).sort_values("order")
    assert allrows["order"].is_unique
    expected = split.test_history.concat(split.test).sequences()
    got = {u: list(g) for u, g in allrows.groupby("user_id", sort=False)["item_id"]}
    assert got == expected
    last_two = allrows.groupby("user_id").tail(2)
    assert (
        last_two.groupby("user_id")["part"].agg(list)
        == pd.Series([["valid", "test"]] * len(parts["test"]), index=sorted(parts["test"]["user_id"]))
    ).all()


@pytest.mark.data
def test_subset_of_a_real_dataset(peers):
    built = peers.build_split("beauty", 50)
    if built is None:
        pytest.skip("../shared/data/beauty is absent")
    split, data = built
    assert split.test.n_users == 50 and "50 users" in data


@pytest.mark.parametrize("name", ["beauty", "ml-1m"])
def test_shared_settings_keep_what_the_peers_have(peers, name):
    """Learned absolute positions and no rotary attention even where core.PARAMS tunes them away."""
    params = peers.shared_params(name, epoch_cap=3)
    assert (params["positions"], params["rotary"], params["lr_patience"]) == ("from_end", False, 0)
    assert params["epochs"] == 3
    seqlens.SASRec(**params)  # a valid configuration


def test_work_per_epoch_counted_by_hand(peers):
    """Train lengths 3, 6 and 1 with max_len 4 and batches of 2, counted by hand for each library."""
    rows = [("a", f"i{k}", k) for k in range(5)] + [("b", f"j{k}", k) for k in range(8)]
    rows += [("c", f"k{k}", k) for k in range(3)]
    log = seqlens.InteractionLog.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    split = seqlens.leave_one_out(log)
    assert sorted(split.train.df.groupby("user_id").size()) == [1, 3, 6]
    work = peers.work_per_epoch(split, max_len=4, batch_size=2)
    # seqlens: users a and b have targets (2 and min(5, 4)); one batch as wide as b's window
    assert work["seqlens"] == {"steps": 1, "positions": 2 * 4, "rows": 2 + 4}
    # RecTools: the same batch, padded to max_len, every position scored
    assert work["rectools"] == {"steps": 1, "positions": 2 * 4, "rows": 2 * 4}
    # RecBole: prefixes 2 + 5 (user c has none), each padded to max_len, one row each
    assert work["recbole"] == {"steps": 4, "positions": 7 * 4, "rows": 7}


def test_time_cap_is_reached_once_and_stays(peers):
    from benchmarks import peers_worker

    assert not peers_worker.TimeCap(None).reached()
    cap = peers_worker.TimeCap(1e-6)  # 60 microseconds
    time.sleep(0.01)
    assert cap.reached() and cap.hit and cap.reached()
    assert not peers_worker.TimeCap(60).reached()


def test_paired_differences_to_seqlens(peers, synth_split, fitted):
    """A peer with the same lists is 'no detectable difference' at zero; one with empty lists is worse."""
    split = synth_split
    items = np.sort(split.train.df["item_id"].unique())
    recs = fitted.recommend(users=split.test.df["user_id"].to_numpy(), k=20)
    lists = {"seqlens": recs, "same": recs, "none": recs.iloc[:0]}
    rows = peers.paired_to_seqlens({lib: peers.score_lists(r, split, items)[1] for lib, r in lists.items()})
    by = {(r["model"], r["metric"]): r for r in rows}
    assert set(by) == {(m, k) for m in ("same", "none") for k in ("ndcg@10", "recall@10")}
    assert by["same", "ndcg@10"]["diff"] == 0 and by["same", "ndcg@10"]["verdict"] == "no detectable difference"
    hit = recs.merge(split.test.df[["user_id", "item_id"]]).query("rank <= 10")
    assert by["none", "recall@10"]["diff"] == pytest.approx(-len(hit) / split.test.n_users)
    assert peers.paired_to_seqlens({"seqlens": peers.score_lists(recs, split, items)[1]}) == []


def test_kept_lists_are_paired_only_when_they_score_as_the_run_did(peers, synth_split, fitted, tmp_path, monkeypatch):
    split = synth_split
    items = np.sort(split.train.df["item_id"].unique())
    recs = fitted.recommend(users=split.test.df["user_id"].to_numpy(), k=20)[["user_id", "item_id", "rank"]]
    monkeypatch.setattr(peers, "LISTS", tmp_path)
    monkeypatch.setattr(peers, "build_split", lambda name, users: (split, "synthetic"))
    folder = peers.lists_folder("synthetic, 9 users")
    folder.mkdir()
    for lib in ("seqlens", "rectools"):
        recs.to_csv(folder / f"{lib}.csv", index=False)
    scored = peers.score_lists(recs, split, items)[0]["metrics"]

    def entry(seqlens_metrics):
        shared = {"max_len": 20, "batch_size": 8, "seed": 0}
        libs = {"seqlens": {"metrics": seqlens_metrics}, "rectools": {"metrics": dict(scored)}}
        return {"dataset": "synthetic", "users_subset": 9, "shared": shared, "train": {}, "libraries": libs}

    stale = entry({**scored, "ndcg@10": 0.5})  # lists from another run: never paired
    peers.fill_in("synthetic, 9 users", stale)
    assert "paired" not in stale and "work" in stale and "cold_targets" in stale
    rescored = entry({**scored, "ndcg@10": 0.5})
    peers.fill_in("synthetic, 9 users", rescored, rescore=True)
    assert rescored["libraries"]["seqlens"]["metrics"] == scored
    assert rescored["rescored"]["libraries"] == ["seqlens"]
    assert {r["verdict"] for r in rescored["paired"]} == {"no detectable difference"}
