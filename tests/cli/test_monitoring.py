import json

from typer.testing import CliRunner

from seqlens.cli.main import app

runner = CliRunner()


def test_monitor_writes_its_report_and_exits_3_when_an_alert_fires(fitted, synth_log, tmp_path):
    model = tmp_path / "model"
    fitted.save(model)
    df = synth_log.df.copy()
    since = df["timestamp"].quantile(0.75)
    df.loc[df["timestamp"] >= since, "item_id"] = df["item_id"].mode()[0]  # one item pushed to everybody
    data = tmp_path / "log.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "monitor"
    args = ["monitor", str(model), str(data), "--out", str(out), "--window", "3d", "--min-requests", "20"]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    report = json.loads((out / "monitor.json").read_text())
    assert report["alerts"] and all(a["window_seconds"] + 3 * 86400 > since for a in report["alerts"])
    assert {"window", "statistic", "divergence", "threshold"} <= set(report["alerts"][0])
    assert (out / "dashboard.html").read_text().startswith("<!doctype html>")


def test_monitor_names_a_bad_window(fitted, synth_log, tmp_path):
    fitted.save(tmp_path / "model")
    synth_log.df.to_csv(tmp_path / "log.csv", index=False)
    result = runner.invoke(
        app,
        [
            "monitor",
            str(tmp_path / "model"),
            str(tmp_path / "log.csv"),
            "--out",
            str(tmp_path / "o"),
            "--window",
            "weekly",
        ],
    )
    assert result.exit_code == 2
    assert "window='weekly' is not a duration" in result.output


def test_monitor_compares_a_candidate_with_the_served_model_on_the_same_requests(fitted, synth_log, tmp_path):
    fitted.save(tmp_path / "served")
    fitted.save(tmp_path / "candidate")
    synth_log.df.to_csv(tmp_path / "log.csv", index=False)
    out = tmp_path / "o"
    args = ["monitor", str(tmp_path / "served"), str(tmp_path / "log.csv"), "--out", str(out), "--window", "3d",
            "--min-requests", "20", "--compare", str(tmp_path / "candidate")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output  # the same model: nothing departs
    report = json.loads((out / "monitor.json").read_text())
    assert report["baseline"] == "served" and report["model"] == "candidate" and report["reference"] == []


def test_audit_writes_shares_ratios_and_the_remediation_trade_off(fitted, synth_log, tmp_path):
    fitted.save(tmp_path / "model")
    synth_log.df.to_csv(tmp_path / "log.csv", index=False)
    titles = synth_log.titles()
    genres = tmp_path / "genres.csv"
    genres.write_text(
        "item_id,genre\n" + "".join(f"{i},{t.split('(genre ')[1].rstrip(')')}\n" for i, t in titles.items())
    )
    out = tmp_path / "audit"
    args = ["audit", str(tmp_path / "model"), str(tmp_path / "log.csv"), "--items", str(genres), "--attribute", "genre",
            "--out", str(out), "--remediate", "0,0.5", "--cohort", "length"]  # fmt: skip
    result = runner.invoke(app, args)
    report = json.loads((out / "audit.json").read_text())
    assert result.exit_code == (3 if report["flagged"] else 0), result.output
    assert [r["lam"] for r in report["remediation"]] == [0.0, 0.5]
    assert len(report["audit"]) == 4  # everyone, and three history-length cohorts
    assert {"value", "attention_ratio", "exposure_ratio_low", "exposure_ratio_flagged"} <= set(
        report["audit"]["all"][0]
    )
