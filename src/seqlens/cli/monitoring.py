"""`seqlens monitor`: replay a log through a model in time windows and alert on attention drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqlens.cli.common import Format, ModelDir, Timestamps, console, warn

#: the exit status when an alert fires, so that a pipeline step can stop on it
ALERT_EXIT = 3


def monitor_cmd(
    model_dir: ModelDir,
    data: Annotated[
        str, typer.Argument(help="Interaction log with times, replayed as requests (each event's history).")
    ],
    out: Path = typer.Option(..., help="Folder for monitor.json and dashboard.html."),
    window: str = typer.Option("7d", help="Window length, e.g. 7d, 1d, 12h."),
    reference: int = typer.Option(8, help="The first this many windows are the reference that calibrates alerts."),
    per_window: int = typer.Option(1000, help="At most this many requests per window, drawn at random (--seed)."),
    min_requests: int = typer.Option(100, help="Windows with fewer requests are left out (too noisy)."),
    rules: Path | None = typer.Option(None, help="Alert rules (TOML); default: the rules shipped with seqlens."),
    items: Path | None = typer.Option(None, help="Item attribute table (read_items formats) for per-value shares."),
    attribute: str | None = typer.Option(None, help="The --items column to track (e.g. brand)."),
    format: Format = "auto",
    timestamps: Timestamps = None,
    seed: int = typer.Option(0, help="Seed of the per-window draw of requests."),
    compare: Path | None = typer.Option(
        None, help="A candidate model: the same requests through it, every window compared with MODEL_DIR's."
    ),
) -> None:
    """Replay DATA through the model window by window; write the statistics, their drift from the reference
    and the alerts to --out. With --compare, check a candidate model against MODEL_DIR on the same requests
    before promoting it. Exits with status 3 when any alert fires."""
    from seqlens.data import read_items, read_log
    from seqlens.monitor import answer, detect, read_rules, requests_from_log, summarize, write_report
    from seqlens.recommenders import load_model

    if (items is None) != (attribute is None):
        raise typer.BadParameter("give --items and --attribute together")
    model = load_model(model_dir)
    log = read_log(data, format, timestamps=timestamps)
    table = read_items(items, multi=[attribute] if attribute else ()) if items is not None else None
    requests = requests_from_log(model, log, window, per_window, seed)
    console.print(f"replaying {len(requests)} requests in {window} windows")
    windows = summarize(model, answer(model, requests), window, table, attribute, min_requests, reference)
    about = {"model": Path(model_dir).name, "data": Path(data).name}
    baseline = None
    if compare is not None:
        candidate = load_model(compare)
        baseline, windows = (
            windows,
            summarize(candidate, answer(candidate, requests), window, table, attribute, min_requests, reference),
        )
        about = {**about, "model": Path(compare).name, "baseline": Path(model_dir).name}
    drift = detect(windows, read_rules(rules) if rules is not None else None, baseline)
    content = write_report(out, windows, drift, about)
    alerted = sorted({a["window"] for a in content["alerts"]})
    checked = (
        f"{len(windows)} windows compared with {Path(model_dir).name}'s" if baseline is not None
        else f"{len(windows)} windows, {len(drift.reference)} of them the reference"
    )  # fmt: skip
    console.print(f"{checked}; {len(content['alerts'])} alerts in {len(alerted)} windows; written to {out}")
    for a in content["alerts"][:20]:
        warn(f"alert: window {a['window']}: {a['statistic']} {a['test']} {a['divergence']:.3g} > {a['threshold']:.3g}")
    if content["alerts"]:
        raise typer.Exit(ALERT_EXIT)
