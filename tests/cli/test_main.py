"""CLI smoke tests: every command runs end to end on synthetic data and reports bad input in one line."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from seqlens.cli.main import COMMANDS, app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model"
    result = runner.invoke(
        app, ["train", "--data", "synthetic", "--epochs", "1", "--dim", "16", "--max-len", "20", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_help_everywhere():
    for cmd in ([], *([name] for name in COMMANDS)):
        result = runner.invoke(app, cmd + ["--help"])
        assert result.exit_code == 0
        assert "Usage" in result.output


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)], ids=["seqlens", *COMMANDS])
def test_help_loads_no_heavy_dependency(command):
    """Listing the commands builds none of them, and every command shows its own --help without torch, pandas
    or fastapi (in a fresh interpreter: this one has imported them all): the options come from torch-free
    declarations (the hyper-parameters, the model, dataset and method names) and the library is imported when
    a command runs."""
    code = (
        "import sys; from typer.testing import CliRunner; from seqlens.cli.main import app\n"
        f"assert CliRunner().invoke(app, {command!r} + ['--help']).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'pandas', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_listing_shows_what_each_command_shows():
    """The list in `seqlens --help` is read from the functions' source; the commands are built from the functions."""
    group = typer.main.get_command(app)
    assert list(group.commands) == list(COMMANDS)
    for name, listed in group.commands.items():
        assert listed.help and listed.help == listed.command.help, name


def test_train_writes_model_and_metrics(trained):
    assert (trained / "model.safetensors").exists()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["ndcg@10"] <= 1.0
    assert metrics["protocol"]["ties"] == "pessimistic" and metrics["protocol"]["split"] == "leave_one_out"


def test_recommend_known_user_json(trained):
    result = runner.invoke(app, ["recommend", str(trained), "--user", "u1", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    recs = json.loads(result.output)
    assert [r["rank"] for r in recs] == [1, 2, 3]
    assert all(r["title"].startswith("Item ") for r in recs)


def test_recommend_for_all_or_listed_users_to_a_file(trained, tmp_path):
    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["recommend", str(trained), "--users", "all", "-k", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recs = pd.read_parquet(out)
    assert recs.groupby("user_id").size().eq(3).all() and recs["user_id"].nunique() > 50
    listed = tmp_path / "users.txt"
    listed.write_text("u1\nu2\n\n")
    csv = tmp_path / "recs.csv"
    result = runner.invoke(app, ["recommend", str(trained), "--users", str(listed), "--out", str(csv)])
    assert result.exit_code == 0, result.output
    assert sorted(pd.read_csv(csv)["user_id"].unique()) == ["u1", "u2"]
    bad = runner.invoke(app, ["recommend", str(trained), "--users", "all"])
    assert bad.exit_code == 2 and "--out" in bad.stderr


def test_batch_recommendations_are_written_a_chunk_at_a_time(trained, tmp_path, monkeypatch):
    """Many users: chunks of users appended as Parquet row groups or CSV lines; the same rows as one call; an
    unknown user in a later chunk leaves no file behind."""
    import pyarrow.parquet as pq

    from seqlens import load
    from seqlens.cli import recommending

    monkeypatch.setattr(recommending, "CHUNK_USERS", 70)
    model = load(trained)
    expected = model.recommend(users=list(model.user_ids_), k=4)
    for name in ("recs.parquet", "recs.csv"):
        out = tmp_path / name
        result = runner.invoke(app, ["recommend", str(trained), "--users", "all", "-k", "4", "--out", str(out)])
        assert result.exit_code == 0, result.output
        got = pd.read_parquet(out) if name.endswith("parquet") else pd.read_csv(out, dtype={"item_id": str})
        pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    assert pq.ParquetFile(tmp_path / "recs.parquet").num_row_groups == -(-len(model.user_ids_) // 70)
    listed = tmp_path / "users.txt"
    listed.write_text("\n".join([*map(str, model.user_ids_[:100]), "nobody"]))
    result = runner.invoke(app, ["recommend", str(trained), "--users", str(listed), "--out", str(tmp_path / "x.csv")])
    assert result.exit_code != 0 and "nobody" in result.output
    assert not (tmp_path / "x.csv").exists() and not list(tmp_path.glob(".x.csv.*"))


def test_recommend_adhoc_items_warns_about_unknown(trained):
    result = runner.invoke(app, ["recommend", str(trained), "--items", "i1,i2,no[pe]", "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "unknown item ids" in result.stderr and "no[pe]" in result.stderr  # bracketed text is not markup
    assert len(json.loads(result.stdout)) == 2  # warnings go to stderr: the JSON on stdout stays parseable


@pytest.mark.fault
def test_errors_go_to_stderr_whole_and_unwrapped(trained):
    user = "no-such-user-" + "x" * 150 + "[b]"
    result = runner.invoke(app, ["recommend", str(trained), "--user", user])
    assert result.exit_code == 2 and result.stdout == ""
    assert user in result.stderr.replace("\n", "")  # named in full, brackets kept
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--user", "no-such-user"], "was not seen in fit"),
        (["--items", "x,y"], "none of its items is known"),
        (["--items", "i1", "-k", "0"], "k must be a positive integer"),
        ([], "exactly one of --user"),
    ],
)
def test_recommend_bad_input_is_one_line_error(trained, args, message):
    result = runner.invoke(app, ["recommend", str(trained), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_evaluate_writes_per_user(trained, tmp_path):
    per_user = tmp_path / "per_user.csv"
    result = runner.invoke(app, ["evaluate", str(trained), "synthetic", "--per-user", str(per_user)])
    assert result.exit_code == 0, result.output
    assert "Popular" in result.output
    assert "…" not in result.stdout and "ties pessimistic" in result.stdout  # not a terminal: nothing cut
    header = per_user.read_text().splitlines()[0]
    assert header.startswith("user_id,item_id,rank")


def test_evaluate_incompatible_model_dir(tmp_path):
    (tmp_path / "m").mkdir()
    result = runner.invoke(app, ["evaluate", str(tmp_path / "m"), "synthetic"])
    assert result.exit_code == 2
    assert "config.json" in result.output


def test_train_awrsr_variant_from_flags(tmp_path):
    out = tmp_path / "awrsr"
    result = runner.invoke(
        app,
        ["train", "--data", "synthetic", "--epochs", "1", "--dim", "16", "--max-len", "20", "--refinement", "additive",
         "--rank", "8", "--refine-layers", "-1", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    params = json.loads((out / "config.json").read_text())["params"]
    assert params["refinement"] == "additive" and params["rank"] == 8 and params["refine_layers"] == [-1]


def test_train_bad_refine_layers(tmp_path):
    result = runner.invoke(app, ["train", "--data", "synthetic", "--refine-layers", "last", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--refine-layers" in result.output and "'last'" in result.output


def test_train_bad_config_names_the_key(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[model]\nlos = "ce"\n')
    result = runner.invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "model.los" in result.output


def test_demo_runs(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "| SASRec |" in report and "| Popular |" in report
    assert (tmp_path / "demo" / "model" / "config.json").exists()
    assert "why (user " in result.stdout and "Recommended " in result.stdout  # it ends with an explanation
    assert (tmp_path / "demo" / "explain.html").read_text().startswith("<!doctype html>")


def test_compare_model_with_baselines_writes_report(trained, tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(
        app,
        ["compare", f"sasrec={trained}", "popular", "markov", "--data", "synthetic", "--reference", "popular",
         "--metrics", "ndcg@10,recall@10", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "compare.json").read_text())
    rows = {(r["model"], r["metric"]): r for r in report["rows"]}
    assert set(rows) == {(m, k) for m in ("sasrec", "popular", "markov") for k in ("ndcg@10", "recall@10")}
    assert rows["popular", "ndcg@10"]["verdict"] == "reference"
    assert (
        rows["markov", "ndcg@10"]["ci_low"] <= rows["markov", "ndcg@10"]["diff"] <= rows["markov", "ndcg@10"]["ci_high"]
    )
    markdown = (out / "compare.md").read_text()
    assert (
        "| markov |" in markdown
        and "## Beyond accuracy (top-10)" in markdown
        and "## NDCG@10 by history length" in markdown
    )
    assert "## NDCG@10 by popularity of the target" in markdown and "| head |" in markdown
    assert "leave-one-out test targets" in markdown and "WARNING" not in markdown
    beyond = {r["index"]: r for r in report["Beyond accuracy (top-10)"]}
    assert 0 < beyond["popular"]["coverage@10"] < beyond["markov"]["coverage@10"] <= 1
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_on_the_temporal_split_flags_models_trained_on_other_data(trained, tmp_path):
    out = tmp_path / "temporal"
    args = ["compare", "popular", "markov", f"sasrec={trained}", "--data", "synthetic", "--split", "temporal",
            "--metrics", "ndcg@10", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "sasrec was not trained on this split's training data" in " ".join(result.output.split())
    markdown = (out / "compare.md").read_text()
    assert "temporal test targets" in markdown and "WARNING: sasrec was trained on other data" in markdown
    result = runner.invoke(app, args[:6] + ["--split", "random", "--out", str(out)])
    assert result.exit_code == 2 and "--split 'random'" in result.output


def test_compare_unknown_metric_is_one_line_error(trained, tmp_path):
    result = runner.invoke(
        app, ["compare", "popular", "--data", "synthetic", "--metrics", "ndcg@99", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown metric 'ndcg@99'" in result.output


def test_train_gru4rec_and_reject_foreign_parameters(tmp_path):
    out = tmp_path / "gru"
    args = ["train", "--model", "gru4rec", "--data", "synthetic", "--epochs", "1", "--dim", "16", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["model"] == "GRU4Rec"
    result = runner.invoke(app, args + ["--heads", "2"])
    assert result.exit_code == 2
    assert "gru4rec has no parameter(s) heads" in result.output


def test_calibrate_writes_ece_and_diagram(trained, tmp_path):
    result = runner.invoke(app, ["calibrate", str(trained), "synthetic", "--out", str(tmp_path / "cal")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert 0 <= report["ece"] <= 1 and 0 <= report["ece_scaled"] <= 1 and report["temperature"] > 0
    assert sum(b["users"] for b in report["bins"]) == report["users"]
    assert (tmp_path / "cal" / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_sampled_is_labelled(trained):
    result = runner.invoke(app, ["evaluate", str(trained), "synthetic", "--sampled", "uniform"])
    assert result.exit_code == 0, result.output
    assert "SAMPLED (100 uniform negatives" in " ".join(result.output.split())
    result = runner.invoke(app, ["evaluate", str(trained), "synthetic", "--sampled", "all"])
    assert result.exit_code == 2 and "sampled='all'" in result.output


@pytest.mark.fault
def test_ctrl_c_during_the_test_evaluation_keeps_the_trained_model(tmp_path, monkeypatch):
    import seqlens
    import seqlens.eval

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(seqlens.eval, "evaluate", interrupted)  # `train` imports it from there when it runs
    out = tmp_path / "model"
    result = runner.invoke(
        app, ["train", "--data", "synthetic", "--epochs", "1", "--dim", "16", "--max-len", "20", "--out", str(out)]
    )
    assert result.exit_code == 2 and "interrupted during the test evaluation" in result.stderr
    assert seqlens.load(out).recommend(users=["u1"], k=3).shape[0] == 3
    assert not (out / "metrics.json").exists()


def test_train_on_a_named_dataset_from_a_data_root(tmp_path):
    (tmp_path / "data" / "lastfm").mkdir(parents=True)
    rows = [f"u{u} " + " ".join(f"i{(u * 7 + t) % 40}" for t in range(12)) for u in range(60)]
    (tmp_path / "data" / "lastfm" / "LastFM.txt").write_text("\n".join(rows) + "\n")
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--dataset", "lastfm", "--data-root", str(tmp_path / "data"), "--epochs", "1",
                                 "--dim", "8", "--max-len", "10", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["dataset"]["n_users"] == 60
    missing = runner.invoke(app, ["train", "--dataset", "beauty", "--data-root", str(tmp_path / "data")])
    assert missing.exit_code == 2 and "Beauty_item.txt: missing" in missing.stderr


def test_train_in_two_processes(tmp_path):
    """`--nproc 2`: two gloo ranks train, rank 0 alone evaluates and saves (a fresh interpreter, as users run it)."""
    out = tmp_path / "model"
    args = ["train", "--data", "synthetic", "--epochs", "2", "--dim", "16", "--max-len", "20", "--nproc", "2"]
    done = subprocess.run([sys.executable, "-m", "seqlens", *args, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("model saved to") == 1  # written once, by rank 0
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert json.loads((out / "metrics.json").read_text())["test"]["ndcg@10"] > 0


def test_train_and_evaluate_a_context_model_from_a_table(tmp_path):
    rng = np.random.default_rng(0)
    devices = rng.choice(["mobile", "desktop"], 600)
    frame = pd.DataFrame({"user_id": np.repeat(np.arange(60), 10), "item_id": [f"{d[0]}{k}" for d, k in
                          zip(devices, rng.integers(5, size=600))], "timestamp": np.tile(np.arange(10), 60),
                          "device": devices})  # fmt: skip
    frame.to_csv(tmp_path / "log.csv", index=False)
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "log.csv"), "--context", "device", "--epochs", "1",
                                 "--dim", "8", "--max-len", "10", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "context.json").read_text())["vocabularies"] == {"device": ["desktop", "mobile"]}
    result = runner.invoke(app, ["evaluate", str(out), str(tmp_path / "log.csv")])
    assert result.exit_code == 0, result.output
    answers = {}
    for asked in ("device=mobile", "device=desktop"):
        result = runner.invoke(app, ["recommend", str(out), "--user", "0", "--context", asked, "--json"])
        assert result.exit_code == 0, result.output
        answers[asked] = [r["score"] for r in json.loads(result.stdout)]
    assert answers["device=mobile"] != answers["device=desktop"]  # the request's context reaches the model
    result = runner.invoke(app, ["recommend", str(out), "--user", "0", "--context", "mobile"])
    assert result.exit_code == 2 and "column=value" in result.output
    sequences = tmp_path / "log.txt"
    sequences.write_text("1 2 3\n2 3 4\n")
    result = runner.invoke(app, ["train", "--data", str(sequences), "--context", "device", "--out", str(out)])
    assert result.exit_code != 0 and "context columns (device) are read from tables" in result.output
