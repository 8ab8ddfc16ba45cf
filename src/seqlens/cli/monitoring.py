"""`seqlens monitor` and `seqlens audit`: attention drift over time windows, and bias toward attribute values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqlens.cli.common import Format, ModelDir, Timestamps, TrainingData, console, read_for, warn
from seqlens.errors import SeqlensError

#: the exit status when an alert fires, so that a pipeline step can stop on it
ALERT_EXIT = 3


def monitor_cmd(
    model_dir: ModelDir,
    data: Annotated[
        str | None, typer.Argument(help="Interaction log with times, replayed as requests (each event's history).")
    ] = None,
    out: Path = typer.Option(..., help="Folder for monitor.json and dashboard.html."),
    window: str = typer.Option("7d", help="Window length, e.g. 7d, 1d, 12h."),
    reference: int = typer.Option(
        8, help="Windows in the reference that calibrates alerts: the ones just before each window checked."
    ),
    fixed: bool = typer.Option(
        False, help="Compare every window with the first --reference windows instead of the ones just before it."
    ),
    per_window: int = typer.Option(1000, help="At most this many requests per window, drawn at random (--seed)."),
    per_user: int | None = typer.Option(None, help="At most this many requests of one user per window."),
    min_requests: int = typer.Option(100, help="Windows with fewer requests are left out (too noisy)."),
    rules: Path | None = typer.Option(None, help="Alert rules (TOML); default: the rules shipped with seqlens."),
    items: Path | None = typer.Option(None, help="Item attribute table (read_items formats) for per-value shares."),
    attribute: str | None = typer.Option(None, help="The --items column to track (e.g. brand)."),
    format: Format = "auto",
    timestamps: Timestamps = None,
    seed: int = typer.Option(0, help="Seed of the per-window draw of requests."),
    cohort: str | None = typer.Option(
        None, help="Also check each cohort on its own: 'length' (short/medium/long histories) or a --users column."
    ),
    users: Path | None = typer.Option(None, help="User attribute table (read_users formats: CSV, users.dat, u.user)."),
    requests_dir: Path | None = typer.Option(
        None, "--requests", help="Instead of DATA, the service's request log (seqlens serve --request-log DIR)."
    ),
    compare: Path | None = typer.Option(
        None, help="A candidate model: the same requests through it, every window compared with MODEL_DIR's."
    ),
) -> None:
    """Replay DATA through the model window by window; write the statistics, their drift from the reference
    and the alerts to --out. With --compare, check a candidate model against MODEL_DIR on the same requests
    before promoting it. Exits with status 3 when any alert fires."""
    from seqlens.data import read_items, read_users
    from seqlens.monitor import answer, detect, read_rules, requests_from_log, summarize, write_report
    from seqlens.monitor.requests import read_requests
    from seqlens.monitor.windows import cohort_labels
    from seqlens.recommenders import load_model

    if (items is None) != (attribute is None):
        raise typer.BadParameter("give --items and --attribute together")
    if (data is None) == (requests_dir is None):
        raise typer.BadParameter("give DATA (a log to replay) or --requests DIR (the service's request log)")
    rule_list = read_rules(rules) if rules is not None else None  # a bad rules file fails before the replay
    model = load_model(model_dir)
    table = read_items(items, multi=[attribute] if attribute else ()) if items is not None else None
    if requests_dir is not None:
        if compare is not None or items is not None:
            raise typer.BadParameter("--compare and --items need DATA: the request log holds no histories")
        answers = read_requests(requests_dir, model)
        console.print(f"read {len(answers.records)} logged requests")
    else:
        requests = requests_from_log(
            model, read_for(model, str(data), format, timestamps), window, per_window, seed, per_user
        )
        console.print(f"replaying {len(requests)} requests in {window} windows")
        answers = answer(model, requests)
    windows = summarize(model, answers, window, table, attribute, min_requests, reference)
    about: dict[str, object] = {"model": Path(model_dir).name, "data": Path(str(data or requests_dir)).name}
    baseline = None
    if compare is not None:
        candidate = load_model(compare)
        baseline, windows = (
            windows,
            summarize(candidate, answer(candidate, requests), window, table, attribute, min_requests, reference),
        )
        about = {**about, "model": Path(compare).name, "baseline": Path(model_dir).name}
    trailing = None if fixed or baseline is not None else reference
    if trailing is not None:
        about["trailing"] = trailing
    drift = detect(windows, rule_list, baseline, trailing)
    content = write_report(out, windows, drift, about)
    alerted = sorted({a["window"] for a in content["alerts"]})
    checked = (
        f"{len(windows)} windows compared with {Path(model_dir).name}'s" if baseline is not None
        else f"{len(windows)} windows, {len(drift.reference)} of them the reference"
    )  # fmt: skip
    console.print(f"{checked}; {len(content['alerts'])} alerts in {len(alerted)} windows; written to {out}")
    alerts = [("", a) for a in content["alerts"]]
    if cohort is not None:  # each cohort against its own reference windows, written to out/cohort-<value>
        labels = cohort_labels(answers, cohort, read_users(users) if users is not None else None)
        for value in sorted(set(labels)):
            part = answers.where(labels == value)
            try:
                part_windows = summarize(model, part, window, table, attribute, min_requests, reference)
            except SeqlensError as err:
                warn(f"cohort {value}: not checked ({err})")
                continue
            found = write_report(
                out / f"cohort-{_slug(value)}",
                part_windows,
                detect(part_windows, rule_list, trailing=trailing),
                {**about, "cohort": f"{cohort}={value}"},
            )
            console.print(f"cohort {cohort}={value}: {len(found['alerts'])} alerts")
            alerts += [(f"{cohort}={value}: ", a) for a in found["alerts"]]
    for where, a in alerts[:20]:
        warn(
            f"alert: {where}window {a['window']}: {a['statistic']} {a['test']} {a['divergence']:.3g} > {a['threshold']:.3g}"
        )
    if alerts:
        raise typer.Exit(ALERT_EXIT)


def _slug(value: str) -> str:
    """A cohort value as a folder name."""
    return "".join(ch if ch.isalnum() else "-" for ch in value).strip("-") or "blank"


def audit_cmd(
    model_dir: ModelDir,
    data: TrainingData,
    items: Path = typer.Option(
        ..., help="Item attribute table (read_items formats: CSV, Parquet, item2attributes.json, movies.dat)."
    ),
    attribute: str = typer.Option(..., help="The --items column to audit (e.g. brand, genres)."),
    out: Path = typer.Option(..., help="Folder for audit.json."),
    k: int = typer.Option(10, "-k", "--k", help="Length of the recommendation lists."),
    cohort: str | None = typer.Option(None, help="Also audit each cohort: 'length' or a --users column."),
    users: Path | None = typer.Option(None, help="User attribute table (read_users formats)."),
    remediate: str = typer.Option(
        "0,0.25,0.5,0.75", help="Calibrated re-ranking strengths to measure (0 = the model's own ranking)."
    ),
    format: Format = "auto",
    timestamps: Timestamps = None,
) -> None:
    """Audit an item attribute on the test users of DATA (split leave-one-out): its share of attention against
    its share of the histories, and of recommendations against interactions, with bootstrap CIs, flagged outside
    0.8-1.25; and calibrated re-ranking's trade-off between accuracy and the exposure gap. Exit status 3 when a
    value is flagged."""
    import json

    import numpy as np

    from seqlens import atomic
    from seqlens.data import leave_one_out, read_items, read_users
    from seqlens.eval.protocol import targets_with_histories
    from seqlens.monitor import answer
    from seqlens.monitor.audit import audit, trade_off
    from seqlens.monitor.replay import Requests
    from seqlens.monitor.windows import cohort_labels
    from seqlens.recommenders import load_model

    model = load_model(model_dir)
    split = leave_one_out(read_for(model, data, format, timestamps))
    table = read_items(items, multi=[attribute])
    ids, histories, targets = targets_with_histories(model, split.test, split.test_history)
    known = (histories.lengths > 0) & (targets > 0)
    ids, targets = ids[known], targets[known]
    histories = histories.subset(known)
    groups = {"all": np.ones(len(ids), dtype=bool)}
    if cohort is not None:
        requests = Requests.of(histories, ids)
        labels = cohort_labels(answer(model, requests, k=1), cohort, read_users(users) if users is not None else None)
        groups |= {f"{cohort}={v}": labels == v for v in sorted(set(labels))}
    report: dict = {"model": Path(model_dir).name, "data": Path(data).name, "attribute": attribute, "users": len(ids)}
    flagged = []
    for name, rows in groups.items():
        part = histories.subset(rows)
        frame = audit(model, part, table, attribute, k=k)
        report.setdefault("audit", {})[name] = frame.to_dict(orient="records")
        console.print(f"{name}: {int(rows.sum())} users")
        console.print(frame.round(3).to_string(index=False))
        flagged += [f"{name}: {r['value']} ({kind} ratio {r[kind + '_ratio']:.2f}, CI {r[kind + '_ratio_low']:.2f}-"
                    f"{r[kind + '_ratio_high']:.2f})"
                    for r in frame.to_dict(orient="records") for kind in ("attention", "exposure") if r[kind + "_ratio_flagged"]]  # fmt: skip
    lams = tuple(float(x) for x in remediate.split(",") if x.strip())
    trade = trade_off(model, histories, targets, table, attribute, lams, k)
    report["remediation"] = trade.drop(columns="per_user_hit").to_dict(orient="records")
    console.print(trade.drop(columns="per_user_hit").round(4).to_string(index=False))
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "audit.json", json.dumps({**report, "flagged": flagged}, indent=1) + "\n")
    for line in flagged[:20]:
        warn(f"flagged: {line}")
    if flagged:
        raise typer.Exit(ALERT_EXIT)
