"""SASRec reading the request's context: what the history cannot tell, evaluation with each event's own context,
saved vocabularies, unknown values, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import seqlens
from seqlens.errors import ArtifactError, DataError
from seqlens.explain import explain, explain_features

POOL, USERS, LENGTH = 10, 300, 8


@pytest.fixture(scope="module")
def device_log() -> seqlens.InteractionLog:
    """Every event comes from a device drawn at random, and its item from that device's pool (m0..m9 on mobile,
    d0..d9 on desktop): the history cannot tell the next item's pool, the request's device can."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(USERS):
        for t in range(LENGTH):
            device = ["mobile", "desktop"][rng.integers(2)]
            rows.append((f"u{u}", f"{device[0]}{rng.integers(POOL)}", t, device))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "device"])
    return seqlens.read_interactions(frame, context=["device"])


PARAMS = dict(dim=16, max_len=10, epochs=30, lr=0.005, progress=False, seed=0)


@pytest.fixture(scope="module")
def context_model(device_log) -> seqlens.SASRec:
    torch.set_num_threads(1)
    return seqlens.SASRec(context=["device"], **PARAMS).fit(device_log)


def pool_share(model: seqlens.SASRec, device: str | None) -> float:
    """The share of the top 5 after a mixed history that comes from `device`'s pool (asked from `device`)."""
    given = None if device is None else {"v": {"device": device}}
    top = model.recommend(histories={"v": ["m1", "d2", "m3"]}, k=5, context=given)["item_id"]
    return float(np.mean([i.startswith((device or "m")[0]) for i in top]))


def test_the_request_context_tells_what_the_history_cannot(context_model, device_log):
    assert pool_share(context_model, "mobile") >= 0.8 and pool_share(context_model, "desktop") >= 0.8
    # known users take the request's context too
    top = context_model.recommend(
        users=["u0", "u1"], k=3, context={"u0": {"device": "desktop"}, "u1": {"device": "mobile"}}
    )
    assert top.groupby("user_id")["item_id"].agg(lambda s: s.str[0].tolist()).to_dict() == {
        "u0": ["d"] * 3, "u1": ["m"] * 3
    }  # fmt: skip


def test_evaluation_reads_each_test_events_own_context(device_log):
    split = seqlens.leave_one_out(device_log)
    model = seqlens.SASRec(context=["device"], **PARAMS).fit(split.train, valid=split.valid)
    read = seqlens.evaluate(model, split.test, split.test_history, exclude_seen=False).summary["recall@10"]
    test_without = seqlens.read_interactions(split.test.df.drop(columns=["device"]))  # the requests' context unknown
    with pytest.warns(UserWarning, match="no context column 'device'"):
        unknown = seqlens.evaluate(model, test_without, split.test_history, exclude_seen=False).summary["recall@10"]
    id_only = seqlens.SASRec(**PARAMS).fit(split.train, valid=split.valid)
    baseline = seqlens.evaluate(id_only, split.test, split.test_history, exclude_seen=False).summary["recall@10"]
    # recall@10 over 20 items (items repeat, so seen ones are kept): about 0.5 without the device, 1 with it
    assert read >= 0.9 and unknown <= 0.7 and baseline <= 0.7


def test_save_load_round_trip(context_model, tmp_path):
    context_model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "context.json").read_text()) == {
        "vocabularies": {"device": ["desktop", "mobile"]}
    }
    loaded = seqlens.load(tmp_path / "m")
    asked = {"u3": {"device": "mobile"}}
    pd.testing.assert_frame_equal(
        context_model.recommend(users=["u3", "u4"], k=5, context=asked),
        loaded.recommend(users=["u3", "u4"], k=5, context=asked),
    )
    (tmp_path / "m" / "context.json").unlink()
    with pytest.raises(ArtifactError):
        seqlens.load(tmp_path / "m")


def test_explanations_score_the_item_as_recommend_does(context_model):
    asked = {"device": "desktop"}
    top = context_model.recommend(histories={"v": ["m1", "m2"]}, k=1, context={"v": asked})
    why = explain(context_model, history=["m1", "m2"], context=asked)
    assert why.recommended == top["item_id"][0] and why.score == pytest.approx(top["score"][0], rel=1e-5)
    by_feature = explain_features(context_model, history=["m1", "m2"], context=asked)
    assert by_feature.request == [("context", "device", "desktop")]
    assert by_feature.score == pytest.approx(top["score"][0], rel=1e-5)
    assert "this request's device (desktop)" in by_feature.narrative


def test_unknown_values_and_clear_errors(context_model, device_log):
    plain = context_model.recommend(histories={"v": ["m1"]}, k=5)
    with pytest.warns(UserWarning, match="device: 'tablet'"):
        odd = context_model.recommend(histories={"v": ["m1"]}, k=5, context={"v": {"device": "tablet"}})
    pd.testing.assert_frame_equal(plain, odd)
    with pytest.raises(DataError, match="no context column 'channel'"):
        context_model.recommend(histories={"v": ["m1"]}, context={"v": {"channel": "x"}})
    with pytest.raises(DataError, match="not among the users or histories"):
        context_model.recommend(users=["u1"], context={"u2": {"device": "mobile"}})
    bare = seqlens.read_interactions(device_log.df.drop(columns=["device"]))
    with pytest.raises(DataError, match=r"read_interactions\(\.\.\., context=\['device'\]\)"):
        seqlens.SASRec(context=["device"], epochs=1, progress=False).fit(bare)
    id_only = seqlens.SASRec(dim=8, max_len=8, epochs=1, progress=False).fit(bare)
    with pytest.raises(DataError, match="reads no request context"):
        id_only.recommend(histories={"v": ["m1"]}, context={"v": {"device": "mobile"}})


def test_the_monitor_replay_reads_each_events_own_context(context_model, device_log):
    from seqlens.monitor.replay import answer, requests_from_log

    requests = requests_from_log(context_model, device_log, window="7d", per_window=None, per_user=None).where(
        np.arange(12)
    )
    replayed = context_model.decode_items(answer(context_model, requests, k=3).recommended.ravel()).reshape(-1, 3)
    events = device_log.df.set_index(["user_id", "timestamp"])["device"]
    for i in range(len(requests)):
        history = list(context_model.decode_items(requests.histories[i]))
        device = events[(requests.users[i], len(history))]  # the event after the history is the request
        expected = context_model.recommend(histories={"x": history}, k=3, context={"x": {"device": device}})
        assert replayed[i].tolist() == expected["item_id"].tolist()


def test_the_approximate_index_reads_the_request_context(context_model):
    pytest.importorskip("faiss", reason="the approximate index needs faiss-cpu (pip install 'seqlens[ann]')")
    from seqlens.recommenders.retrieval import ItemIndex

    asked = {"u1": {"device": "desktop"}, "u2": {"device": "mobile"}}
    index = ItemIndex(context_model, nlist=2, nprobe=2)  # every cluster visited: exact
    found = index.recommend(users=["u1", "u2"], k=5, context=asked)
    expected = context_model.recommend(users=["u1", "u2"], k=5, context=asked)
    assert found["item_id"].tolist() == expected["item_id"].tolist()
