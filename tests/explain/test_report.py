"""Figures, the HTML report and the two CLI commands (explain, faithfulness) end to end on a tiny model."""

from __future__ import annotations

import base64
import json
import re

import pytest
from typer.testing import CliRunner

from seqlens.cli.main import app
from seqlens.errors import DataError
from seqlens.eval.protocol import targets_with_histories
from seqlens.explain import METHODS, explain
from seqlens.explain.faithfulness import faithfulness
from seqlens.explain.plots import attention_heatmaps, attribution_bars, faithfulness_curves, short
from seqlens.explain.report import html_report

runner = CliRunner()
PNG = b"\x89PNG"


def test_short_titles():
    assert short("Star Wars: Episode IV - A New Hope (1977)", 12) == "Star Wars:\u2026"
    assert short("Heat (1995)") == "Heat (1995)" and short(None) == "?"


def test_figures_as_png_and_svg(model, history, synth_split):
    assert attention_heatmaps(model, history, last=5).startswith(PNG)
    assert b"<svg" in attention_heatmaps(model, history, last=3, which="raw", fmt="svg")[:500]
    bars = {m: explain(model, history=history, method=m) for m in METHODS}
    assert attribution_bars(bars).startswith(PNG)
    _, histories, _ = targets_with_histories(model, synth_split.test, synth_split.test_history)
    assert faithfulness_curves(faithfulness(model, histories, n_users=5, draws=1)).startswith(PNG)
    with pytest.raises(DataError, match="choose png or svg"):
        attention_heatmaps(model, history, fmt="gif")
    with pytest.raises(DataError, match="choose applied or raw"):
        attention_heatmaps(model, history, which="softmax")


def test_html_report_is_self_contained_and_hides_denied_items(model):
    users = ["u3"]
    denied = model.history_of("u3")[-1]
    page, explanations = html_report(model, users=users, deny=[denied], verb="watched", heatmap_last=6)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"(src|href)=[\"'](?!data:)", page)  # nothing fetched from outside
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2 * len(users) and all(base64.b64decode(i).startswith(PNG) for i in images)
    for e in explanations:
        assert f"<em>{model.item_titles_[e.recommended]}</em>" in page
    u3 = page.split("<h2>User u3</h2>")[1].split("<h2>")[0]  # u3's section: its history holds the denied item
    assert model.item_titles_[denied] not in u3 and "other" in u3
    assert "target-agnostic" in page


def test_cli_explain_prints_narratives_and_writes_report(tmp_path, model, synth_split):
    model_dir, data = tmp_path / "model", tmp_path / "log.csv"
    model.save(model_dir)
    synth_split.test_history.concat(synth_split.test).df.to_csv(data, index=False)
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["explain", str(model_dir), "--user", "u3", "--data", str(data),
                                 "--verb", "watched", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("Recommended ") == 1 and "watched" in result.output and "ago" in result.output
    assert out.read_text().count("data:image/png;base64,") == 2
    result = runner.invoke(app, ["explain", str(model_dir), "--user", "u3", "--user", "u4", "--no-report"])
    assert result.exit_code == 0 and result.output.count("Recommended ") == 2, result.output
    result = runner.invoke(app, ["explain", str(model_dir), "--items", "i1,i2,i3", "--item", "i9", "--method",
                                 "occlusion", "--json", "--deny", "i2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (e,) = json.loads(result.output)
    assert e["recommended"] == "i9" and e["method"] == "occlusion"
    assert [h["item_id"] for h in e["history"]] == ["i1", "other", "i3"]
    for args, message in [
        (["--user", "u3", "--items", "i1"], "not both"),
        (["--user", "nobody", "--no-report"], "user 'nobody' was not seen in fit"),
        (["--items", "i1", "--method", "lime", "--no-report"], "method='lime' is unknown"),
        (["--items", "i1", "--deny-attribute", "genre"], "expected column=value"),
        (["--items", "i1", "--deny-attribute", "genre=A"], "needs item metadata"),
    ]:
        result = runner.invoke(app, ["explain", str(model_dir), *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_cli_faithfulness_writes_table_and_plot(tmp_path, model, synth_split):
    model_dir, data = tmp_path / "model", tmp_path / "log.csv"
    model.save(model_dir)
    synth_split.test_history.concat(synth_split.test).df.to_csv(data, index=False)
    out = tmp_path / "faith"
    result = runner.invoke(app, ["faithfulness", str(model_dir), str(data), "--users", "10", "--draws", "2",
                                 "--methods", "attention,occlusion", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "faithfulness.json").read_text())
    assert [r["method"] for r in payload["table"]] == ["attention", "occlusion", "recency", "random"]
    assert payload["protocol"]["n_users"] == 10
    assert (out / "faithfulness.png").read_bytes().startswith(PNG)
    assert "| attention |" in (out / "faithfulness.md").read_text()
    bad = runner.invoke(app, ["faithfulness", str(model_dir), str(data), "--methods", "magic"])
    assert bad.exit_code == 2 and "method='magic' is unknown" in bad.output
