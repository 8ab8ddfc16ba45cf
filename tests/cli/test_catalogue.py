"""`seqlens add-items`: new items for a saved feature model from the command line, errors on stderr."""

import pandas as pd
from typer.testing import CliRunner

import seqlens
from seqlens.cli.main import app

runner = CliRunner()


def test_new_items_are_added_to_a_saved_feature_model(tmp_path):
    rows = [(f"u{u}", f"i{(u + t) % 6}", t) for u in range(30) for t in range(5)]
    table = pd.DataFrame({"item_id": [f"i{k}" for k in range(6)], "brand": ["a", "b"] * 3, "price": range(6)})
    log = seqlens.read_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    log = log.with_items(seqlens.read_items(table, categorical=["brand"], numeric=["price"]))
    seqlens.SASRec(features=["brand", "price"], dim=8, max_len=5, epochs=1, progress=False).fit(log).save(
        tmp_path / "m"
    )
    pd.DataFrame({"item_id": ["i0", "new", "odd"], "brand": ["a", "b", "zzz"], "price": [0, 2.5, 99]}).to_csv(
        tmp_path / "items.csv", index=False
    )
    args = ["add-items", str(tmp_path / "m"), str(tmp_path / "items.csv"), "--categorical", "brand",
            "--numeric", "price", "--out", str(tmp_path / "m2")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "added 2 items (8 in all)" in result.output and "'zzz'" in result.output  # the unseen brand: a warning
    model = seqlens.load(tmp_path / "m2")
    assert {"new", "odd"} <= set(model.item_ids_) and model.n_warm_ == 6
    assert "new" in model.recommend(histories={"x": ["i1"]}, k=7)["item_id"].tolist()


def test_a_model_without_attributes_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    (tmp_path / "items.csv").write_text("item_id,brand\nnew,a\n")
    result = runner.invoke(
        app, ["add-items", str(tmp_path / "m"), str(tmp_path / "items.csv"), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "not a model that reads item attributes" in result.output
    assert not (tmp_path / "x").exists()
