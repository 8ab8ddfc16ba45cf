"""Model directories: round trips, layout, refusal of foreign or broken artifacts, atomic saves."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

import seqlens
from seqlens import Popular, SASRec
from seqlens._version import ARTIFACT_FORMAT
from seqlens.data.sequences import PAD, Sequences
from seqlens.errors import ArtifactError
from seqlens.recommenders import artifacts

USERS = ["u0", "u42", "u199"]


def same_recommendations(a, b, history):
    pd.testing.assert_frame_equal(a.recommend(users=USERS, k=10), b.recommend(users=USERS, k=10), check_exact=True)
    pd.testing.assert_frame_equal(
        a.recommend(histories={"x": history}, k=5, exclude_seen=False),
        b.recommend(histories={"x": history}, k=5, exclude_seen=False),
        check_exact=True,
    )


@pytest.fixture(scope="module")
def saved(sasrec, tmp_path_factory):
    path = tmp_path_factory.mktemp("artifacts") / "model"
    sasrec.save(path)
    return path


def test_round_trip_sasrec(sasrec, saved, synth_history):
    loaded = seqlens.load(saved)
    assert type(loaded) is SASRec
    assert loaded.get_params() == sasrec.get_params()
    same_recommendations(sasrec, loaded, synth_history)
    assert loaded.history_ == sasrec.history_
    assert loaded.history_of("u0") == sasrec.history_of("u0")
    assert loaded.item_titles_ == sasrec.item_titles_ and loaded.item_titles_["i0"].startswith("Item 0")


def test_round_trip_rotary_sasrec(synth_split, tmp_path, synth_history):
    """A model with rotary attention and no positional embeddings saves and loads like any other."""
    model = SASRec(epochs=1, positions="none", rotary=True, dim=16, max_len=20, progress=False).fit(synth_split.train)
    model.save(tmp_path / "rotary")
    loaded = seqlens.load(tmp_path / "rotary")
    assert loaded.rotary and loaded.positions == "none" and loaded.net_.pos_emb is None
    same_recommendations(model, loaded, synth_history)


def test_round_trip_popular(popular, tmp_path, synth_history):
    artifacts.save_model(popular, tmp_path / "pop", metrics={"ndcg@10": 0.5})
    loaded = seqlens.load(tmp_path / "pop")
    assert type(loaded) is Popular
    same_recommendations(popular, loaded, synth_history)
    assert loaded.metrics_ == {"ndcg@10": 0.5}


def test_layout_and_config(sasrec, saved, synth_split):
    names = {p.name for p in saved.iterdir()}
    assert {"config.json", "model.safetensors", "items.json", "users.json", "history.json"} <= names
    assert not any(n.endswith((".pkl", ".pickle", ".pt", ".pth", ".bin", ".tmp")) for n in names)
    for p in saved.iterdir():  # every file is JSON or safetensors: nothing that unpickles
        if p.suffix == ".json":
            json.loads(p.read_text())
        else:
            assert p.name == "model.safetensors"
    config = json.loads((saved / "config.json").read_text())
    assert config["format"] == ARTIFACT_FORMAT
    assert config["seqlens_version"] == seqlens.__version__
    assert config["model"] == "SASRec"
    assert config["params"] == sasrec.get_params()
    assert re.fullmatch(r"[0-9a-f]{16}", config["config_hash"])
    assert config["config_hash"] == artifacts.config_hash(sasrec)
    assert config["dataset"]["fingerprint"] == synth_split.train.fingerprint()
    assert config["dataset"]["n_interactions"] == len(synth_split.train)
    tensors = load_file(saved / "model.safetensors")
    assert "state.item_emb.weight" in tensors and "histories.flat" in tensors


def test_config_hash_ignores_display_only_parameters():
    assert artifacts.config_hash(SASRec(progress=True)) == artifacts.config_hash(SASRec(progress=False))
    assert artifacts.config_hash(SASRec(dim=32)) != artifacts.config_hash(SASRec(dim=64))


def test_fingerprint_tracks_content(synth_split):
    train = synth_split.train
    assert train.fingerprint() == train.filter_users(train.users).fingerprint()
    assert train.fingerprint() != train.filter_users(train.users[1:]).fingerprint()


@pytest.fixture
def copy_of(saved, tmp_path):
    """A fresh copy of the saved model directory that a test may damage."""
    path = tmp_path / "copy"
    shutil.copytree(saved, path)
    return path


def test_other_format_is_refused(copy_of):
    config = json.loads((copy_of / "config.json").read_text())
    config["format"] = 999
    (copy_of / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError) as e:
        seqlens.load(copy_of)
    assert str(copy_of / "config.json") in str(e.value) and "999" in str(e.value)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "items.json", "users.json"])
def test_missing_file(copy_of, name):
    (copy_of / name).unlink()
    with pytest.raises(ArtifactError, match=re.escape(str(copy_of / name)) + ".*missing"):
        seqlens.load(copy_of)


def test_not_a_directory(tmp_path):
    with pytest.raises(ArtifactError, match="not a model directory"):
        seqlens.load(tmp_path / "nothing-here")


@pytest.mark.parametrize("name", ["config.json", "items.json", "users.json"])
def test_corrupt_json(copy_of, name):
    text = (copy_of / name).read_text()
    (copy_of / name).write_text(text[: len(text) // 2])
    with pytest.raises(ArtifactError, match=re.escape(str(copy_of / name)) + ".*not valid JSON"):
        seqlens.load(copy_of)


def test_binary_garbage_in_config(copy_of):
    (copy_of / "config.json").write_bytes(b"\xff\xfe\x00\x80garbage")
    with pytest.raises(ArtifactError, match="config.json"):
        seqlens.load(copy_of)


def test_config_that_is_not_an_object(copy_of):
    (copy_of / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(ArtifactError, match="config.json"):
        seqlens.load(copy_of)


def test_corrupt_safetensors(copy_of):
    (copy_of / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    with pytest.raises(ArtifactError, match=re.escape(str(copy_of / "model.safetensors")) + ".*corrupt"):
        seqlens.load(copy_of)


def test_unknown_model_class(copy_of):
    config = json.loads((copy_of / "config.json").read_text())
    config["model"] = "Transformer9000"
    (copy_of / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="unknown model class 'Transformer9000'"):
        seqlens.load(copy_of)


def test_parameters_that_do_not_fit(copy_of):
    config = json.loads((copy_of / "config.json").read_text())
    config["params"]["warp_speed"] = 9
    (copy_of / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="parameters do not fit SASRec"):
        seqlens.load(copy_of)


@pytest.fixture(scope="module")
def saved_before_options(synth_split, tmp_path_factory):
    """A model trained as every model was before `lr_patience` and `positions` existed."""
    model = SASRec(epochs=1, lr_patience=0, positions="from_end", rotary=False, dim=16, max_len=20, progress=False)
    path = tmp_path_factory.mktemp("old") / "model"
    model.fit(synth_split.train).save(path)
    return model, path


@pytest.mark.parametrize("name, old", [("lr_patience", 0), ("positions", "from_end"), ("rotary", False)])
def test_a_parameter_added_later_takes_the_value_the_model_was_trained_with(
    saved_before_options, tmp_path, synth_history, name, old
):
    """A config.json without `name` loads with the value such models were trained with (a constant lr,
    learned positions counted from the end), whatever today's default is."""
    model, saved_path = saved_before_options
    path = shutil.copytree(saved_path, tmp_path / "copy")
    config = json.loads((path / "config.json").read_text())
    del config["params"][name]
    (path / "config.json").write_text(json.dumps(config))
    loaded = seqlens.load(path)
    assert loaded.get_params()[name] == old
    same_recommendations(model, loaded, synth_history)


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_failed_save_keeps_the_previous_model(sasrec, popular, tmp_path, monkeypatch, synth_history):
    path = tmp_path / "model"
    popular.save(path)
    before = snapshot(path)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(artifacts, "st_save", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        sasrec.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary directory left behind
    assert snapshot(path) == before
    same_recommendations(popular, seqlens.load(path), synth_history)


def test_failed_first_save_leaves_nothing(sasrec, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError("full")

    monkeypatch.setattr(artifacts.atomic, "write_text", full)
    with pytest.raises(OSError, match="full"):
        sasrec.save(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_save_over_an_existing_model_replaces_it(sasrec, popular, tmp_path, synth_history):
    path = tmp_path / "model"
    sasrec.save(path)
    popular.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert type(seqlens.load(path)) is Popular
    assert json.loads((path / "history.json").read_text()) == []  # Popular has no training history


def test_save_unfitted_model(tmp_path):
    with pytest.raises(seqlens.recommenders.NotFittedError):
        SASRec().save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_histories_saved_with_padding_load_without_it(sasrec, tmp_path):
    """A model saved before histories left out unknown items held them as padding; loading drops them."""
    h = sasrec.histories_
    holed = [np.append(h[i], PAD) if i == 0 else h[i] for i in range(len(h))]
    kept = sasrec.histories_
    try:
        sasrec._set_histories(sasrec.user_ids_, Sequences.from_lists(holed))
        sasrec.save(tmp_path / "holed")
    finally:
        sasrec._set_histories(sasrec.user_ids_, kept)
    user = sasrec.user_ids_[0]
    loaded = seqlens.load(tmp_path / "holed")
    assert loaded.history_of(user) == sasrec.history_of(user)
    pd.testing.assert_frame_equal(loaded.recommend(users=[user], k=5), sasrec.recommend(users=[user], k=5))


def _edit_config(change):
    def damage(path):
        config = json.loads((path / "config.json").read_text())
        change(config)
        (path / "config.json").write_text(json.dumps(config))

    return damage


def _drop_tensor(name):
    def damage(path):
        from safetensors.torch import save_file

        tensors = load_file(path / "model.safetensors")
        tensors.pop(name)
        save_file(tensors, path / "model.safetensors")

    return damage


def _set_tensor(name, index, value):
    def damage(path):
        from safetensors.torch import save_file

        tensors = load_file(path / "model.safetensors")
        tensors[name][index] = value
        save_file(tensors, path / "model.safetensors")

    return damage


@pytest.mark.parametrize(
    "damage, message",
    [
        (_edit_config(lambda c: c.pop("params")), "no 'params'"),
        # a flipped high bit in a history's length once asked numpy for 2 PiB before any check (found by the fuzz test)
        (_set_tensor("histories.lengths", 0, 2**48), "offsets or lengths outside the stored items"),
        (_set_tensor("histories.starts", 1, -5), "offsets or lengths outside the stored items"),
        (_edit_config(lambda c: c["params"].update(dim=4096)), "do not fit the configuration"),
        (_edit_config(lambda c: c["params"].update(max_len=8_000_000)), "pos_emb.weight"),  # no allocation first
        (_edit_config(lambda c: c["params"].update(layers=7)), "do not fit the configuration"),
        (_drop_tensor("histories.flat"), "corrupt model directory"),
        (_drop_tensor("state.item_emb.weight"), "item_emb.weight is missing"),
        (lambda p: (p / "items.json").write_text('{"titles": {}}'), "item_ids"),
        (lambda p: (p / "users.json").write_text('["u1", "u1"]'), "users.json lists 2 users"),
    ],
)
@pytest.mark.fault
def test_every_corruption_is_an_artifact_error_at_load(copy_of, damage, message):
    damage(copy_of)
    with pytest.raises(ArtifactError, match=re.escape(message)):
        seqlens.load(copy_of)


@pytest.mark.fault
@pytest.mark.parametrize("name", ["model.safetensors", "items.json", "history.json"])
def test_a_changed_byte_that_leaves_a_file_well_formed_is_caught_by_its_checksum(copy_of, name):
    data = bytearray((copy_of / name).read_bytes())
    if name == "model.safetensors":
        data[-3] ^= 0x01  # a bit of the last weight
    else:
        data[data.index(b'"', data.index(b"[")) + 1] = ord("Z")  # the first letter of the first string in a list
    (copy_of / name).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=re.escape(str(copy_of / name)) + ".*SHA-256 differs"):
        seqlens.load(copy_of)


def test_models_saved_without_checksums_still_load(copy_of):
    _edit_config(lambda c: c.pop("sha256"))(copy_of)
    assert seqlens.load(copy_of).recommend(users=[seqlens.load(copy_of).user_ids_[0]], k=3).shape[0] == 3


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models-8581490"


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_models_saved_by_the_release_before_the_parameter_schema_load_and_recommend_the_same(name):
    """Saved by commit 8581490 (tests/fixtures/models-8581490: tiny models, their top-5 for five users)."""
    model = seqlens.load(FIXTURES / name)
    expected = pd.DataFrame(json.loads((FIXTURES / "recommendations.json").read_text())[name])
    recs = model.recommend(users=list(expected["user_id"].unique()), k=5)
    assert recs["item_id"].tolist() == expected["item_id"].tolist()
    np.testing.assert_allclose(recs["score"], expected["score"], atol=1e-4)
