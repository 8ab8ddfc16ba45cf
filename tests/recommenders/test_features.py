"""SASRec reading item attributes: cold items ranked by their attributes, saved vocabularies, clear errors."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

import seqlens
from seqlens.errors import ArtifactError, DataError
from seqlens.explain import explain

GROUPS, PER_GROUP, COLD_PER_GROUP = 8, 12, 2


def group_of(item: str) -> int:
    return int(item[1 : item.index("i")])


@pytest.fixture(scope="module")
def group_log() -> seqlens.InteractionLog:
    """Every user picks items of one group, so the next item's group is the group of the earlier ones. The last
    items of each group never occur in the log (cold): only the attribute table knows them."""
    rng = np.random.default_rng(0)
    items = [f"g{g}i{k}" for g in range(GROUPS) for k in range(PER_GROUP)]
    table = pd.DataFrame({"item_id": items, "group": [f"group {group_of(i)}" for i in items],
                          "tags": ["x|y" if k % 2 else "x" for k in range(len(items))]})  # fmt: skip
    rows = [
        (f"u{u}", f"g{u % GROUPS}i{rng.integers(PER_GROUP - COLD_PER_GROUP)}", t) for u in range(400) for t in range(12)
    ]
    log = seqlens.read_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    return log.with_items(seqlens.read_items(table, categorical=["group"], multi=["tags"]))


@pytest.fixture(scope="module")
def feature_model(group_log) -> seqlens.SASRec:
    return seqlens.SASRec(features=["group", "tags"], dim=16, max_len=12, epochs=5, progress=False, seed=0).fit(
        group_log
    )


def is_cold(item: str) -> bool:
    return int(item[item.index("i") + 1 :]) >= PER_GROUP - COLD_PER_GROUP


def test_cold_items_are_ranked_by_their_attributes(feature_model, group_log):
    assert feature_model.n_items_ == GROUPS * PER_GROUP and feature_model.n_warm_ == group_log.n_items
    rng = np.random.default_rng(1)
    hits = []
    for g in range(GROUPS):
        for _ in range(5):
            history = [f"g{g}i{k}" for k in rng.integers(0, PER_GROUP - COLD_PER_GROUP, 6)]
            ranked = feature_model.recommend(histories={"x": history}, k=feature_model.n_items_ - 6)["item_id"]
            hits.append(group_of(next(i for i in ranked if is_cold(i))) == g)  # the best-ranked cold item
    assert np.mean(hits) >= 0.9
    id_only = seqlens.SASRec(dim=16, max_len=12, epochs=1, progress=False, seed=0).fit(group_log)
    assert id_only.n_items_ == group_log.n_items  # the id-only model does not know cold items at all
    assert (id_only.encode_items([f"g0i{PER_GROUP - 1}"]) == 0).all()


def test_save_and_load_keep_the_vocabularies_and_the_ranking(feature_model, tmp_path):
    feature_model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "features.json").read_text())
    assert saved["vocabularies"]["tags"] == ["x", "y"] and len(saved["codes"]["group"]) == feature_model.n_items_ + 1
    loaded = seqlens.load(tmp_path / "m")
    assert (loaded.n_items_, loaded.n_warm_) == (feature_model.n_items_, feature_model.n_warm_)
    history = {"x": ["g2i0", "g2i3"]}
    assert loaded.recommend(histories=history, k=10).equals(feature_model.recommend(histories=history, k=10))
    why = explain(loaded, history=history["x"])  # the default, signed method works on a feature model
    assert why.recommended == loaded.recommend(histories=history, k=1)["item_id"].iloc[0]
    assert why.signed and len(why.scores) == 2


@pytest.mark.parametrize(
    "change, message",
    [(lambda f: f["codes"]["group"][1].__setitem__(0, 99), "outside its vocabulary"),
     (lambda f: f["codes"]["group"].pop(), "one row per item"),
     (lambda f: f.pop("codes"), "expected an object"),
     (lambda f: f.__setitem__("n_warm", 10_000), "n_warm must count the items")],
)  # fmt: skip
def test_a_corrupt_features_file_is_refused(feature_model, tmp_path, change, message):
    feature_model.save(tmp_path / "m")
    path = tmp_path / "m" / "features.json"
    features = json.loads(path.read_text())
    change(features)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["sha256"].pop("features.json")  # the structural check, not the checksum, must catch it
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    path.write_text(json.dumps(features))
    with pytest.raises(ArtifactError, match=message):
        seqlens.load(tmp_path / "m")


def test_features_need_attributes_and_known_columns(group_log):
    plain = seqlens.read_interactions(group_log.df)
    with pytest.raises(DataError, match="needs item attributes"):
        seqlens.SASRec(features=["group"], epochs=1, progress=False).fit(plain)
    with pytest.raises(DataError, match="no attribute column 'brand'"):
        seqlens.SASRec(features=["brand"], epochs=1, progress=False).fit(group_log)
    with pytest.raises(DataError, match="names no attribute column"):
        seqlens.SASRec(features=[], epochs=1, progress=False).fit(group_log)
    with pytest.raises(DataError, match="names a column twice"):
        seqlens.SASRec(features=["group", "group"], epochs=1, progress=False).fit(group_log)


def test_feature_explanations_are_the_exact_drops_and_cite_what_raised_the_score(feature_model):
    from seqlens.explain import explain_features

    history = ["g4i0", "g4i2", "g1i3", "g4i5"]
    why = explain_features(feature_model, history=history)
    assert why.groups == ["item", "group", "tags"] and why.scores.shape == (4, 3) and why.totals.shape == (3,)
    assert why.recommended == feature_model.recommend(histories={"x": history}, k=1)["item_id"].iloc[0]
    net = feature_model.net_
    seq = torch.from_numpy(feature_model.encode_items(history))[None]
    target = torch.from_numpy(feature_model.encode_items([why.recommended]))
    hide = torch.zeros(1, 4, 3, dtype=torch.bool)
    hide[0, 1, 1] = True  # the group of the second item
    with torch.inference_mode():
        dropped = net.score_of(net(seq, hide=hide)[0][:, -1], target)
    assert abs((why.score - float(dropped[0])) - why.scores[1, 1]) < 1e-4
    assert why.narrative.startswith(f"Recommended {why.recommended} mostly because of")
    assert all(why.items[j] in why.narrative for j, g in zip(*np.nonzero(why.shares() >= 0.05)) if why.scores[j, g] > 0)


def test_hiding_the_top_cells_lowers_the_score_more_than_random_cells(feature_model):
    from seqlens.explain import feature_attributions

    rng = np.random.default_rng(3)
    seq = torch.from_numpy(np.stack([
        feature_model.encode_items([f"g{g}i{k}" for k in rng.integers(0, PER_GROUP - COLD_PER_GROUP, 8)])
        for g in rng.integers(0, GROUPS, 40)
    ]))  # fmt: skip
    net = feature_model.net_
    with torch.inference_mode():
        target = net.scores(net.last_hidden(seq)).argmax(-1)
        cells, _, full = feature_attributions(net, seq, target)

        def drop(chosen: torch.Tensor) -> float:
            hide = torch.zeros(cells.shape, dtype=torch.bool).view(len(seq), -1)
            hide.scatter_(1, chosen, True)
            return float((full - net.score_of(net(seq, hide=hide.view(cells.shape))[0][:, -1], target)).mean())

        top = drop(cells.view(len(seq), -1).topk(3, dim=1).indices)
        random = drop(torch.from_numpy(np.stack([rng.choice(cells[0].numel(), 3, replace=False) for _ in seq])))
    assert top > 3 * random


def test_a_feature_explanation_of_an_unknown_item_names_it(feature_model):
    from seqlens.explain import explain_features

    with pytest.raises(DataError, match="item 'nope' to explain is not known"):
        explain_features(feature_model, history=["g1i0"], item="nope")


# --- new items after fit ------------------------------------------------------------------------------
def new_items(rows: list[tuple[str, str, str]]) -> seqlens.ItemTable:
    frame = pd.DataFrame(rows, columns=["item_id", "group", "tags"])
    return seqlens.read_items(frame, categorical=["group"], multi=["tags"])


def test_items_added_after_fit_are_ranked_by_their_attributes_and_survive_a_round_trip(feature_model, tmp_path):
    model = copy.deepcopy(feature_model)
    before = model.recommend(histories={"x": ["g3i0", "g3i1"]}, k=5)
    model.add_items(new_items([(f"new{g}", f"group {g}", "x") for g in range(GROUPS)] + [("g0i0", "group 5", "y")]))
    assert model.n_items_ == feature_model.n_items_ + GROUPS and model.n_warm_ == feature_model.n_warm_
    assert model.item_codes_.codes["group"][model.encode_items(["g0i0"])[0], 0] == 1  # a known item keeps its own
    hits = []
    for g in range(GROUPS):
        ranked = model.recommend(histories={"x": [f"g{g}i0", f"g{g}i1", f"g{g}i2"]}, k=model.n_items_ - 3)["item_id"]
        hits.append(next(i for i in ranked if i.startswith("new")) == f"new{g}")  # the best-ranked new item
    assert np.mean(hits) >= 0.9
    assert set(before["item_id"]) <= set(model.item_ids_) and model.history_of("u0") == feature_model.history_of("u0")
    model.save(tmp_path / "m")
    loaded = seqlens.load(tmp_path / "m")
    history = {"x": ["g2i0", "new2"]}
    assert loaded.n_items_ == model.n_items_ and loaded.recommend(histories=history, k=10).equals(
        model.recommend(histories=history, k=10)
    )


def test_an_attribute_value_training_never_saw_is_left_out_with_a_warning(feature_model):
    model = copy.deepcopy(feature_model)
    with pytest.warns(UserWarning, match=r"group: 'group 99'.*tags: 'zzz'"):
        model.add_items(new_items([("odd", "group 99", "x|zzz")]))
    row = model.encode_items(["odd"])[0]
    assert model.item_codes_.codes["group"][row].tolist() == [0]  # no group: the item keeps its known tag
    assert model.item_codes_.codes["tags"][row].tolist()[:1] == [model.item_codes_.vocabularies["tags"].index("x") + 1]
    assert "odd" in model.recommend(histories={"x": ["g1i0"]}, k=model.n_items_ - 1)["item_id"].tolist()


def test_adding_items_needs_a_feature_model_and_the_training_bands(group_log, feature_model):
    id_only = seqlens.SASRec(dim=8, max_len=12, epochs=1, progress=False, seed=0).fit(group_log)
    with pytest.raises(DataError, match="needs a model that reads item attributes"):
        id_only.add_items(new_items([("new", "group 1", "x")]))
    prices = pd.DataFrame(
        {"item_id": group_log.attributes.frame["item_id"], "price": np.arange(len(group_log.attributes))}
    )
    log = seqlens.read_interactions(group_log.df).with_items(seqlens.read_items(prices, numeric=["price"]))
    model = seqlens.SASRec(features=["price"], dim=8, max_len=12, epochs=1, progress=False, seed=0).fit(log)
    fresh = pd.DataFrame({"item_id": ["p1", "p2"], "price": [1.0, 500.0]})
    with pytest.raises(DataError, match=r"column 'price' was cut into bands at .* edges=model.item_codes_.bands"):
        model.add_items(seqlens.read_items(fresh, numeric=["price"]))
    as_numbers = pd.DataFrame({"item_id": ["n1"], "group": [3.5], "tags": ["x"]})
    with pytest.raises(DataError, match="'group' is numeric here, but the model has no band edges"):
        feature_model.add_items(seqlens.read_items(as_numbers, numeric=["group"], multi=["tags"]))
    model.add_items(seqlens.read_items(fresh, numeric=["price"], edges=model.item_codes_.bands))
    top = len(model.item_codes_.vocabularies["price"])  # 500 lies beyond the training edges: the highest band
    assert model.item_codes_.codes["price"][model.encode_items(["p1", "p2"])].ravel().tolist() == [1, top]
