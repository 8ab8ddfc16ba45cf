"""SASRec reading user attributes: what the history cannot tell, saved codes, unknown values, clear errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import seqlens
from seqlens.errors import ArtifactError, DataError
from seqlens.explain import explain, explain_features

POOL, USERS, LENGTH = 10, 300, 5


@pytest.fixture(scope="module")
def group_log() -> seqlens.InteractionLog:
    """Every history starts with the same item `hub`, then items of the user's group's pool (a0..a9 or b0..b9):
    after `hub` alone, only the user's group (an attribute) tells which pool comes next."""
    rng = np.random.default_rng(0)
    rows, users = [], []
    for u in range(USERS):
        group = "ab"[u % 2]
        picks = [f"{group}{k}" for k in rng.integers(POOL, size=LENGTH)]
        rows += [(f"u{u}", item, t) for t, item in enumerate(["hub", *picks])]
        users.append((f"u{u}", group, ["young", "old"][u % 3 == 0]))
    log = seqlens.read_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    table = pd.DataFrame(users, columns=["user_id", "group", "age"])
    return log.with_users(seqlens.read_users(table, categorical=["group", "age"]))


@pytest.fixture(scope="module")
def user_model(group_log) -> seqlens.SASRec:
    torch.set_num_threads(1)
    params = dict(dim=16, max_len=8, epochs=30, lr=0.005, progress=False, seed=0)
    return seqlens.SASRec(user_features=["group", "age"], **params).fit(group_log)


def pool_share(model: seqlens.SASRec, group: str, **kwargs) -> float:
    """The share of the top 5 after `hub` alone that comes from `group`'s pool."""
    top = model.recommend(histories={"visitor": ["hub"]}, k=5, **kwargs)["item_id"]
    return float(np.mean([i.startswith(group) for i in top]))


def test_user_attributes_tell_what_the_history_cannot(user_model, group_log):
    assert pool_share(user_model, "a", user_attributes={"visitor": {"group": "a"}}) >= 0.8
    assert pool_share(user_model, "b", user_attributes={"visitor": {"group": "b"}}) >= 0.8
    id_only = seqlens.SASRec(dim=16, max_len=8, epochs=30, lr=0.005, progress=False, seed=0).fit(group_log)
    # without the attribute the two pools are alike after `hub`: a model cannot serve both groups at once
    shares = [pool_share(id_only, g) for g in "ab"]
    assert min(shares) <= 0.6
    # known users are scored with their stored attributes: the second item lands in the user's pool
    short = {f"u{u}": ["hub"] for u in range(20)}
    found = user_model.recommend(
        histories=short, k=1, user_attributes={f"u{u}": {"group": "ab"[u % 2]} for u in range(20)}
    )
    assert all(item[0] == "ab"[int(u[1:]) % 2] for u, item in zip(found["user_id"], found["item_id"]))


def test_known_users_read_their_stored_attributes(user_model, group_log):
    codes = user_model.user_codes_
    assert codes.columns == ["group", "age"] and codes.values_of("u0") == {"group": "a", "age": "old"}
    by_label = user_model.recommend(users=["u1"], k=5)
    adhoc = user_model.recommend(
        histories={"u1": user_model.history_of("u1")}, k=5, user_attributes={"u1": {"group": "b", "age": "young"}}
    )
    np.testing.assert_allclose(by_label["score"], adhoc["score"], rtol=1e-5)
    # an ad-hoc history reads only the attributes given with it, whatever its label: none is unknown
    again = user_model.recommend(histories={"u1": user_model.history_of("u1")}, k=5)
    assert not np.allclose(by_label["score"], again["score"], rtol=1e-5)
    # labels are strings, however they are given
    by_int = user_model.recommend(histories={1: user_model.history_of("u1")}, k=5, user_attributes={1: {"group": "b"}})
    by_str = user_model.recommend(
        histories={"1": user_model.history_of("u1")}, k=5, user_attributes={"1": {"group": "b"}}
    )
    np.testing.assert_allclose(by_int["score"], by_str["score"], rtol=1e-6)


def test_unknown_values_read_as_unknown_with_a_warning(user_model):
    plain = user_model.recommend(histories={"v": ["hub", "a1"]}, k=5)
    with pytest.warns(UserWarning, match="group: 'c'"):
        odd = user_model.recommend(histories={"v": ["hub", "a1"]}, k=5, user_attributes={"v": {"group": "c"}})
    pd.testing.assert_frame_equal(plain, odd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        partial = user_model.recommend(histories={"v": ["hub", "a1"]}, k=5, user_attributes={"v": {"age": "old"}})
    assert not np.allclose(partial["score"], plain["score"])


def test_save_load_round_trip(user_model, tmp_path):
    user_model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "user_features.json").read_text())
    assert saved["vocabularies"] == {"group": ["a", "b"], "age": ["old", "young"]}
    loaded = seqlens.load(tmp_path / "m")
    users = [f"u{u}" for u in range(10)]
    pd.testing.assert_frame_equal(user_model.recommend(users=users, k=5), loaded.recommend(users=users, k=5))
    given = {"visitor": {"group": "b"}}
    pd.testing.assert_frame_equal(
        user_model.recommend(histories={"visitor": ["hub"]}, k=5, user_attributes=given),
        loaded.recommend(histories={"visitor": ["hub"]}, k=5, user_attributes=given),
    )
    (tmp_path / "m" / "user_features.json").unlink()
    with pytest.raises(ArtifactError):
        seqlens.load(tmp_path / "m")


def test_explanations_score_the_item_as_recommend_does(user_model):
    given = {"group": "b", "age": "young"}
    top = user_model.recommend(histories={"v": ["hub", "b3"]}, k=1, user_attributes={"v": given})
    why = explain(user_model, history=["hub", "b3"], user_attributes=given)
    assert why.recommended == top["item_id"][0] and why.score == pytest.approx(top["score"][0], rel=1e-5)
    known = explain(user_model, "u1")
    assert known.score == pytest.approx(user_model.recommend(users=["u1"], k=1)["score"][0], rel=1e-5)
    # by feature: the history's cells plus each attribute's exact part add up to the score
    by_feature = explain_features(user_model, history=["hub"], user_attributes=given)
    assert by_feature.request == [("user", "group", "b"), ("user", "age", "young")]
    top_after_hub = user_model.recommend(histories={"v": ["hub"]}, k=1, user_attributes={"v": given})
    assert by_feature.score == pytest.approx(top_after_hub["score"][0], rel=1e-5)
    shares = np.concatenate([by_feature.shares().ravel(), by_feature.request_shares()])
    assert shares.sum() == pytest.approx(1.0)
    # after `hub` alone the group is what points to b's pool: it is cited
    assert by_feature.request_scores[0] > 0 and "your group (b)" in by_feature.narrative


def test_evaluation_reads_the_users_attributes(user_model, group_log):
    split = seqlens.leave_one_out(group_log)
    model = seqlens.SASRec(user_features=["group"], dim=16, max_len=8, epochs=10, progress=False, seed=0)
    model.fit(split.train, valid=split.valid)
    with_codes = seqlens.evaluate(model, split.test, split.test_history).summary["ndcg@10"]
    model.user_codes_ = seqlens.data.UserCodes(model.user_codes_.vocabularies, {})  # every user unknown
    without = seqlens.evaluate(model, split.test, split.test_history).summary["ndcg@10"]
    assert with_codes != without


def test_clear_errors(user_model, group_log):
    bare = seqlens.read_interactions(group_log.df)
    with pytest.raises(DataError, match="with_users"):
        seqlens.SASRec(user_features=["group"], epochs=1, progress=False).fit(bare)
    with pytest.raises(DataError, match="no user column 'job'"):
        seqlens.SASRec(user_features=["job"], epochs=1, progress=False).fit(group_log)
    with pytest.raises(DataError, match="no user feature 'job'"):
        user_model.recommend(histories={"v": ["hub"]}, user_attributes={"v": {"job": "x"}})
    with pytest.raises(DataError, match="ad-hoc histories"):
        user_model.recommend(users=["u1"], user_attributes={"u1": {"group": "a"}})
    with pytest.raises(DataError, match="not among the users or histories"):
        user_model.recommend(histories={"v": ["hub"]}, user_attributes={"w": {"group": "a"}})
    id_only = seqlens.SASRec(dim=8, max_len=8, epochs=1, progress=False).fit(group_log)
    with pytest.raises(DataError, match="reads no user attributes"):
        id_only.recommend(histories={"v": ["hub"]}, user_attributes={"v": {"group": "a"}})
    with pytest.raises(DataError, match="distinct columns"):
        seqlens.SASRec(user_features=["group", "group"], epochs=1, progress=False).fit(group_log)


def test_the_monitor_replay_recommends_what_recommend_does(user_model):
    from seqlens.monitor.replay import Requests, answer

    users = [f"u{u}" for u in range(12)]
    _, histories = user_model.encoded_histories(users=users)
    replayed = answer(user_model, Requests.of(histories, np.array(users)), k=3).recommended
    expected = user_model.recommend(users=users, k=3)["item_id"].to_numpy().reshape(len(users), 3)
    np.testing.assert_array_equal(user_model.decode_items(replayed.ravel()).reshape(len(users), 3), expected)
