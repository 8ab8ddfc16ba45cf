"""What `seqlens monitor` writes: `monitor.json` (windows, statistics, thresholds, alerts) and a self-contained
HTML dashboard (time series with the reference shaded and the alerting windows marked). Both are written
whole or not at all (`atomic`)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from seqlens import atomic
from seqlens.eval.report import figure_png, pyplot
from seqlens.monitor.drift import Drift
from seqlens.monitor.replay import ORDER
from seqlens.monitor.windows import Windows


def _iso(seconds: int) -> str:
    return pd.Timestamp(int(seconds), unit="s").strftime("%Y-%m-%d")


def report_dict(windows: Windows, drift: Drift, about: dict) -> dict:
    """monitor.json's content: every window's statistics and divergences, each check, and the alerts."""
    rows = []
    for start, values in windows.scalars.iterrows():
        rows.append({
            "start": _iso(start), "start_seconds": int(start), "reference": int(start) in drift.reference,
            "statistics": {k: float(v) for k, v in values.items()},
            "divergence": {k: float(v) for k, v in drift.divergence.loc[start].items() if pd.notna(v)},  # NaN: unchecked
            "thresholds": {k: float(v) for k, v in drift.thresholds.loc[start].items() if pd.notna(v)},
        })  # fmt: skip
    return {
        **about,
        "window": windows.window,
        "reference": [_iso(s) for s in drift.reference],
        "tests": drift.tests,
        "windows": rows,
        "distributions": {
            name: {"bins": list(frame.columns), "shares": frame.to_numpy().round(6).tolist()}
            for name, frame in windows.distributions.items()
        },  # fmt: skip
        "alerts": [{**a, "window": _iso(a["window"]), "window_seconds": a["window"]} for a in drift.alerts],
    }


def dashboard_png(windows: Windows, drift: Drift) -> bytes:
    """Each checked statistic's divergence over its threshold per window (above 1 = alert), and the raw window
    means of the main attention statistics, with the reference shaded and alerting windows marked."""
    plt = pyplot()
    when = pd.to_datetime(windows.scalars.index, unit="s")
    ratio = drift.divergence / drift.thresholds
    last = max((int(c.split("@")[1]) for c in windows.scalars.columns if "@" in c), default=0)
    shown = [
        c
        for c in (f"normalized_entropy@{last}", f"last_mass@{last}", f"top1_mass@{last}", ORDER, "length")
        if c in windows.scalars
    ]
    fig, axes = plt.subplots(1 + len(shown), 1, figsize=(11, 2.2 * (1 + len(shown))), sharex=True)
    for name in ratio.columns:
        axes[0].plot(when, ratio[name], lw=1, label=name)
    axes[0].axhline(1.0, color="red", lw=1, ls="--")
    axes[0].set_ylabel("divergence / threshold")
    axes[0].legend(fontsize=6, ncol=4, loc="upper left")
    for ax, name in zip(axes[1:], shown):
        ax.plot(when, windows.scalars[name], lw=1.2, marker=".")
        ax.set_ylabel(name, fontsize=8)
    reference = pd.to_datetime(drift.reference, unit="s")
    alerted = pd.to_datetime(sorted({a["window"] for a in drift.alerts}), unit="s")
    for ax in axes:
        if len(reference):  # none when a candidate model is compared with a baseline
            ax.axvspan(reference.min(), reference.max(), color="0.85", zorder=0)
        for t in alerted:
            ax.axvline(t, color="red", alpha=0.35, lw=2, zorder=0)
    axes[0].set_title(
        "grey: reference windows; red: windows with an alert" if len(reference)
        else "red: windows with an alert (each checked against a reference of other windows)"
    )  # fmt: skip
    return figure_png(fig)


def write_report(out: str | Path, windows: Windows, drift: Drift, about: dict) -> dict:
    """Write monitor.json and dashboard.html into `out`; returns the report's content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    content = report_dict(windows, drift, about)
    atomic.write_text(out / "monitor.json", json.dumps(content, indent=1, allow_nan=False) + "\n")
    png = base64.b64encode(dashboard_png(windows, drift)).decode()
    if drift.reference:
        reference = (
            f"reference: {len(drift.reference)} windows ({content['reference'][0]} to {content['reference'][-1]})"
        )
    elif "baseline" in about:
        reference = f"reference: every window of {about['baseline']}"
    else:
        reference = f"reference: the {about.get('trailing', 'previous')} windows before each window"
    alerts = "".join(
        f"<tr><td>{html.escape(a['window'])}</td><td>{html.escape(a['statistic'])}</td><td>{a['test']}</td>"
        f"<td>{a['divergence']:.3g}</td><td>{a['threshold']:.3g}</td></tr>"
        for a in content["alerts"]
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>seqlens monitor</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:2px 8px;text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>Attention monitor</h1>
<p>Model {html.escape(str(about.get("model", "")))}, requests from {html.escape(str(about.get("data", "")))},
{len(windows)} windows of {html.escape(windows.window)}; {html.escape(reference)}.
<strong>{len(content["alerts"])} alerts</strong> in {len({a["window"] for a in content["alerts"]})} windows.</p>
<img alt="divergence of every statistic over time, and the main attention statistics" src="data:image/png;base64,{png}">
<h2>Alerts</h2>
<table><tr><th>window</th><th>statistic</th><th>test</th><th>divergence</th><th>threshold</th></tr>{alerts}</table>
</body></html>
"""
    atomic.write_text(out / "dashboard.html", page)
    return content
