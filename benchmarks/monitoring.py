"""Attention monitoring benchmark: do injected drifts alert within one window, and how often do undrifted
windows alert? Renders docs/monitoring.md.

The alert rules' factor and floor were chosen on a MovieLens-100K replay (the tuning dataset, reported apart);
the false-alarm rate and the detections are reported on Beauty and MovieLens-1M, which were not looked at
while choosing. Each dataset's model is the explanation benchmark's (runs/explain/<name>, trained there when
missing). Its log is replayed in weekly windows (each event's history is a request; at most `PER_WINDOW` per
window, drawn with the seed), the first `REFERENCE` windows calibrate the thresholds, and from a date two
thirds into the remaining windows one fault is injected:
- promoted: 30% of the requests get three recent items of one attribute value appended (Beauty: an
  attribute id of its item2attributes.json, categories and brands; ML-1M: a genre): the 5th most frequent
  value, its 20 most interacted-with items;
- collapsed: a broken upstream sends only the latest item of every history, so attention collapses onto it.
"No drift" is the trivial monitor: it never alerts, so it catches nothing and never cries wolf.

Usage: python -m benchmarks.monitoring [--datasets ml-100k,beauty,ml-1m] [--seeds 0,1,2] [--render]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import seqlens
from benchmarks.core import DATA
from benchmarks.explanations import DATASET_PARAMS, RUNS, dataset_model, model_for
from seqlens import atomic
from seqlens.eval.protocol import targets_with_histories
from seqlens.eval.significance import paired_difference
from seqlens.monitor import Requests, answer, detect, requests_from_log, summarize, window_starts, write_report
from seqlens.monitor.audit import audit, trade_off
from seqlens.monitor.report import dashboard_png
from seqlens.monitor.windows import MIN_REQUESTS, attribute_values

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "monitoring.json"
DOC = ROOT / "docs" / "monitoring.md"
WINDOW, PER_WINDOW, REFERENCE = "7d", 500, 8
TUNING = "ml-100k"
#: item attributes per dataset: (file under the data root, column)
ATTRIBUTES = {
    "ml-100k": ("ml-100k/u.item", "genres"),
    "beauty": ("beauty/Beauty_item2attributes.json", "attributes"),
    "ml-1m": ("ml-1m/movies.dat", "genres"),
}
PROMOTED_SHARE, PROMOTED_ITEMS, PROMOTED_RANK = 0.3, 3, 4  # 30% of requests, 3 items, the 5th value
FAULTS = ("promoted", "collapsed")
LAMS = (0.0, 0.25, 0.5, 0.75)
#: the two references: the first REFERENCE windows, or the REFERENCE windows before each window
MODES = {"fixed": None, "trailing": REFERENCE}
CHOSEN = "trailing"
#: model updates checked with --compare against the served model (datasets where they are trained)
UPDATES = {"ml-100k": ("shuffled", "reseeded"), "beauty": ("shuffled", "reseeded")}


def drift_start(requests: Requests) -> int:
    """The start (seconds) of the first drifted window: two thirds into the windows after the reference."""
    starts, counts = np.unique(window_starts(requests.times, WINDOW), return_counts=True)
    after = starts[counts >= MIN_REQUESTS][REFERENCE:]
    return int(after[len(after) * 2 // 3])


def inject(fault: str, requests: Requests, since: int, promoted: np.ndarray, seed: int) -> Requests:
    """The requests with `fault` applied to those at or after `since`."""
    rng = np.random.default_rng(seed)
    histories = list(requests.histories)
    for i in np.flatnonzero(requests.times >= since):
        if fault == "collapsed":
            histories[i] = histories[i][-1:]
        elif rng.random() < PROMOTED_SHARE:
            histories[i] = np.concatenate([histories[i], rng.choice(promoted, PROMOTED_ITEMS, replace=False)])
    return Requests(requests.times, requests.users, histories)


def promoted_items(model, table, column: str) -> tuple[str, np.ndarray]:
    """The promoted attribute value (the 5th most frequent in the model's histories) and its 20 most
    interacted-with items (internal indices)."""
    names, slots = attribute_values(model, table, column)
    value = PROMOTED_RANK
    counts = model.history_counts()
    items = np.array([j for j in range(1, model.n_items_ + 1) if value in slots[j]])
    return names[value], items[np.argsort(-counts[items], kind="stable")[:20]]


def updated_model(name: str, split, kind: str):
    """A model update: trained on every user's training sequence in shuffled order (a broken pipeline), or the
    same training with another seed (a healthy update, which should not alert)."""
    if kind == "reseeded":
        return model_for(f"{name}-reseeded", split.train, split.valid, {**DATASET_PARAMS[name], "seed": 1})[0]
    df = split.train.df.copy()  # sorted by user, then time
    rng = np.random.default_rng(0)
    bounds = np.flatnonzero(np.r_[True, df["user_id"].to_numpy()[1:] != df["user_id"].to_numpy()[:-1], True])
    items = df["item_id"].to_numpy().copy()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        items[lo:hi] = rng.permutation(items[lo:hi])
    df["item_id"] = items
    shuffled = seqlens.InteractionLog.from_frame(df, source=f"{name} train, shuffled per user")
    return model_for(f"{name}-shuffled", shuffled, split.valid, DATASET_PARAMS[name])[0]


def compare_updates(name: str, split, model, log, table, column: str, seeds: list[int]) -> dict:
    """Per update and seed: windows where the update's attention departs from the served model's."""
    out: dict = {}
    for kind in UPDATES.get(name, ()):
        update = updated_model(name, split, kind)
        for seed in seeds:
            requests = requests_from_log(model, log, WINDOW, PER_WINDOW, seed)
            served = summarize(model, answer(model, requests), WINDOW, table, column)
            drift = detect(summarize(update, answer(update, requests), WINDOW, table, column), baseline=served)
            alerted = {a["window"] for a in drift.alerts}
            out.setdefault(kind, {})[str(seed)] = {
                "windows": len(served), "alerted": len(alerted),
                "fired": sorted({a["statistic"] for a in drift.alerts}),
            }  # fmt: skip
            print(name, kind, seed, out[kind][str(seed)], flush=True)
    return out


def bias_audit(name: str, split, model, table, column: str) -> dict:
    """The audit of the test users' histories, and calibrated re-ranking's trade-off with a paired CI of the
    recall change against the model's own ranking."""
    _, histories, targets = targets_with_histories(model, split.test, split.test_history)
    known = (histories.lengths > 0) & (targets > 0)
    histories = histories.subset(known)
    frame = audit(model, histories, table, column)
    trade = trade_off(model, histories, targets[known], table, column, LAMS)
    plain = trade["per_user_hit"].iloc[0].astype(float)
    rows = []
    for row in trade.to_dict(orient="records"):
        change = paired_difference(row.pop("per_user_hit").astype(float), plain)
        rows.append(
            {**row, "recall_change": change.mean, "recall_change_low": change.low, "recall_change_high": change.high}
        )
    print(name, "audit", frame.round(3).to_string(), pd.DataFrame(rows).round(4).to_string(), sep="\n", flush=True)
    return {"users": int(known.sum()), "values": frame.to_dict(orient="records"), "remediation": rows}


def outcome(drift, windows, since: int | None) -> dict:
    """False alarms before `since` (everywhere when None), and how soon after it the first alert came."""
    alerted = {a["window"] for a in drift.alerts}
    evaluated = [int(s) for s in windows.scalars.index[REFERENCE:]]  # checked in both modes
    clean = [s for s in evaluated if since is None or s < since]
    drifted = [s for s in evaluated if since is not None and s >= since]
    first = next((i for i, s in enumerate(drifted) if s in alerted), None)
    return {
        "windows": len(windows), "clean_windows": len(clean), "false_alarms": sum(s in alerted for s in clean),
        "lag": first, "fired": sorted({a["statistic"] for a in drift.alerts if drifted and a["window"] == drifted[0]}),
        "drifted_alerted": sum(s in alerted for s in drifted), "drifted": len(drifted),
    }  # fmt: skip


def run(name: str, seeds: list[int]) -> dict | None:
    found = dataset_model(name)
    if found is None:
        print(f"skip {name}: not in {DATA}")
        return None
    split, model, source = found
    log = seqlens.load_dataset(name, DATA)  # the whole log, as the split was made from it
    path, column = ATTRIBUTES[name]
    table = seqlens.read_items(DATA / path)
    value, promoted = promoted_items(model, table, column)
    out: dict = {"model": source, "promoted_value": value, "seeds": {}}
    for seed in seeds:
        requests = requests_from_log(model, log, WINDOW, PER_WINDOW, seed)
        since = drift_start(requests)
        row: dict = {"drift_start": since}
        for fault in ("none", *FAULTS):
            altered = requests if fault == "none" else inject(fault, requests, since, promoted, seed)
            windows = summarize(model, answer(model, altered), WINDOW, table, column)
            for mode, trailing in MODES.items():
                drift = detect(windows, trailing=trailing)
                row.setdefault(fault, {})[mode] = outcome(drift, windows, since if fault != "none" else None)
                print(name, seed, fault, mode, row[fault][mode], flush=True)
                if seed == seeds[0] and fault == "none" and mode == CHOSEN:
                    write_report(ROOT / "runs" / "monitor" / name, windows, drift, {"model": name, "data": name})
                    if name == "beauty":  # the dashboard's figure, shown in the document
                        (ROOT / "docs" / "monitoring-beauty.png").write_bytes(dashboard_png(windows, drift))
        out["seeds"][str(seed)] = row
    out["updates"] = compare_updates(name, split, model, log, table, column, seeds)
    out["audit"] = bias_audit(name, split, model, table, column)
    return out


def render(results: dict) -> str:
    """docs/monitoring.md: how monitoring works and what it measured."""
    rows, detections = [], []
    for name, found in results.items():
        seeds = found["seeds"]
        label = f"{name} (tuning)" if name == TUNING else name
        cells = []
        for mode in MODES:
            clean = sum(r["none"][mode]["clean_windows"] for r in seeds.values())
            alarms = sum(r["none"][mode]["false_alarms"] for r in seeds.values())
            cells.append(f"{alarms} of {clean} ({alarms / max(clean, 1):.1%})")
        rows.append(f"| {label} | {len(seeds)} | {' | '.join(cells)} |")
        for fault in FAULTS:
            for mode in MODES:
                lags = [r[fault][mode]["lag"] for r in seeds.values()]
                fired = sorted({f for r in seeds.values() for f in r[fault][mode]["fired"]})
                after = [sum(r[fault][mode][k] for r in seeds.values()) for k in ("drifted_alerted", "drifted")]
                before = [sum(r[fault][mode][k] for r in seeds.values()) for k in ("false_alarms", "clean_windows")]
                detections.append(
                    f"| {label} | {fault} | {mode} | {sum(lag == 0 for lag in lags)} of {len(lags)} | "
                    f"{', '.join('-' if lag is None else str(lag) for lag in lags)} | {after[0]} of {after[1]} | "
                    f"{before[0]} of {before[1]} | {', '.join(fired[:6])}{' ...' if len(fired) > 6 else ''} |"
                )  # fmt: skip
    updates = [
        f"| {name} | {kind} | {', '.join(str(r['alerted']) + ' of ' + str(r['windows']) for r in per_seed.values())} | "
        f"{', '.join(sorted({f for r in per_seed.values() for f in r['fired']})[:8])} |"
        for name, found in results.items() for kind, per_seed in found.get("updates", {}).items()
    ]  # fmt: skip
    audits = []
    for name, found in results.items():
        if "audit" not in found:
            continue
        values = pd.DataFrame(found["audit"]["values"])
        flagged = values[values["attention_ratio_flagged"] | values["exposure_ratio_flagged"]]
        audits += [
            f"**{name}** ({found['audit']['users']} test users, attribute `{ATTRIBUTES[name][1]}`): "
            f"{len(flagged)} of {len(values)} values flagged.",
            "",
            "| value | history share | attention ratio (95% CI) | interaction share | exposure ratio (95% CI) |",
            "|---|---:|---|---:|---|",
            *[f"| {r.value} | {r.history_share:.3f} | {r.attention_ratio:.2f} ({r.attention_ratio_low:.2f}-"
              f"{r.attention_ratio_high:.2f}){' flagged' if r.attention_ratio_flagged else ''} | {r.interaction_share:.3f} | "
              f"{r.exposure_ratio:.2f} ({r.exposure_ratio_low:.2f}-{r.exposure_ratio_high:.2f})"
              f"{' flagged' if r.exposure_ratio_flagged else ''} |" for r in values.itertuples()],
            "",
            "| calibration lam | recall@10 | change vs lam 0 (95% CI) | NDCG@10 | exposure gap |",
            "|---:|---:|---|---:|---:|",
            *[f"| {r['lam']} | {r['recall@10']:.4f} | {r['recall_change']:+.4f} ({r['recall_change_low']:+.4f} to "
              f"{r['recall_change_high']:+.4f}) | {r['ndcg@10']:.4f} | {r['exposure_gap']:.3f} |"
              for r in found["audit"]["remediation"]],
            "",
        ]  # fmt: skip
    promoted = ", ".join(f"{n}: {f['promoted_value']}" for n, f in results.items())
    return "\n".join(
        [
            "# Monitoring attention: measured",
            "",
            "Generated by `python -m benchmarks.monitoring` from benchmarks/results/monitoring.json (about 15 minutes on",
            "2 cores, once the models exist); do not edit by hand. How `seqlens monitor` works: docs/monitoring-guide.md.",
            "",
            f"Each dataset's log is replayed through its SASRec (the explanation benchmark's model, runs/explain/) in "
            f"{WINDOW} windows: every event's history is a request, at most {PER_WINDOW} per window drawn with the seed, "
            f"windows with fewer than {MIN_REQUESTS} requests left out. "
            "The alert rules (src/seqlens/monitor/rules.toml: factor 2, floors 6 standard deviations and PSI 0.1) and "
            "the trailing reference were chosen on the MovieLens-100K replay. Beauty was not looked at while choosing. "
            "MovieLens-1M was: its false alarms with the fixed reference led to trying the trailing one, and a cap of "
            "10 requests per user and window was tried there and rejected (it raised false alarms on MovieLens-100K "
            "from 0 to 5 of 69 windows); on MovieLens-1M a few users hold most of a week's events (late in its log, "
            "an effective 1 to 13 users a week). Allowing for each window's own sampling noise (a bootstrap over "
            "its users) was tried and not kept: counting the checked window's noise cut MovieLens-1M's false alarms "
            "from 18.3% to 3.9% but lost Beauty's promoted fault (no alert in 2 of 3 seeds); counting only its noise "
            "beyond the reference windows' gave 7.8% and lost it in 1 of 3 (the fault itself widens a drifted "
            "window's bootstrap spread, so the allowance hides it); scaling the reference's noise by each window's "
            "effective number of users gave 14.4% and lost it in 3 of 3. Beauty was looked at for those checks. "
            "Not judging windows of fewer than 10 effective users (a Kish count over their requests) cut MovieLens-1M's "
            "false alarms to 4.5% (20: 1.2%), but then neither fault was caught in any seed there: its drifted weeks "
            "are those thin weeks, and MovieLens-100K lost both faults in 2 of 3 seeds from 20. MovieLens-1M's late "
            "log holds too few users a week to judge attention, and 28-day windows did not help (false alarms 20.8%, "
            "both faults still caught at once): a month's requests there also come from a handful of heavy users.",
            "",
            "## False alarms without drift",
            "",
            "Windows after the first eight with at least one alert, the log replayed as it is (summed over the seeds of",
            f"the request draw). *fixed*: the first {REFERENCE} windows are the reference; *trailing*: each window is",
            f"compared with the {REFERENCE} windows before it (the default of `seqlens monitor`; `--fixed` for the other).",
            'The trivial monitor, "no drift", never alerts: 0% false alarms, and it catches none of the faults below.',
            "",
            "| data | seeds | windows with an alert, fixed reference | windows with an alert, trailing reference |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "## Injected faults",
            "",
            "From a date two thirds into the windows after the reference: *promoted*, 30% of the requests get three recent "
            f"items of one attribute value appended ({promoted}; the 5th most frequent value, its 20 most popular items); "
            "*collapsed*, a broken upstream sends only the latest item of each history, so attention collapses onto it. "
            "Lag 0 = the alert fires in the first drifted window. Alerts before the fault are false alarms of that run.",
            "",
            "| data | fault | reference | alert in the first drifted window | lag per seed | drifted windows alerted | false alarms before | statistics that fired first |",
            "|---|---|---|---:|---|---:|---:|---|",
            *detections,
            "",
            "## Model updates checked before promotion (`--compare`)",
            "",
            "The same requests through the served model and through an update; every window of the update is compared",
            "with the served model's same window, in units of the served model's window-to-window spread (PSI for",
            "distributions). *shuffled*: trained on every user's training sequence in shuffled order (a broken pipeline:",
            "it must alert); *reseeded*: the same training with another seed (a healthy update: it should not). The",
            "paired comparison was chosen on MovieLens-100K; compared with the served model's windows pooled instead,",
            "the Beauty shuffled update alerted in 1-2 of 182 windows too. On Beauty, where order carries little of the",
            "signal, the shuffled model's attention statistics stay within the served model's week-to-week spread:",
            "this check does not catch that update there. `order_sensitivity` (the share of the top 10 that reading the",
            "history backwards changes), added for this fault and checked on MovieLens-100K first, fires there for the",
            "shuffled update in every window and never for the reseeded one. On Beauty it falls from 0.57 to 0.50 (seed 0,",
            "window means), a median 3.4 and at most 7.2 of the served model's window-to-window standard deviations,",
            "against a threshold of 9: not caught either. The threshold is set by the served model's spread over all",
            "its windows, mostly the sampling noise of 500 requests a week, which a comparison on the same requests",
            "does not have; a threshold from the paired differences' own noise is the next thing to try. In the",
            "replays it adds one false alarm, on MovieLens-100K (seed 2: 6.75 standard deviations against the floor of",
            "6), and none on Beauty or MovieLens-1M.",
            "",
            "| data | update | windows alerted, per seed | statistics that fired |",
            "|---|---|---|---|",
            *updates,
            "",
            "## Bias audit and its remediation",
            "",
            "`seqlens audit`: per attribute value, its share of the last layer's attention over its share of the items in",
            "the test users' histories, and its share of the top-10 recommendations over its share of the training",
            "interactions, with Poisson-bootstrap 95% CIs over users; flagged when the CI lies wholly outside 0.8-1.25.",
            "The remediation is calibrated re-ranking (Steck 2018) toward the interaction shares, lam = its weight;",
            "exposure gap = total variation distance between the lists' value shares and the interaction shares.",
            "Beauty's attribute ids mix categories and brands (item2attributes.json does not say which is which), so the",
            "audit there is by attribute id, not by brand alone.",
            "",
            *audits,
            "## The Beauty dashboard (seed 0, no drift)",
            "",
            "![divergence over threshold per statistic, and the main attention statistics per week](monitoring-beauty.png)",
            "",
            "The dashboard as `seqlens monitor` writes it (`dashboard.html`, self-contained) for the whole Beauty log in",
            "weekly windows with the default rules, opened in Chromium (`python -m benchmarks.monitoring --screenshot`).",
            "Most alerts there are on `length`: Beauty histories grow longer over the years, a real shift in the",
            "requests rather than in the model.",
            "",
            "![the dashboard page in Chromium](monitoring-dashboard.png)",
            "",
            *service_section(),
        ]
    )


#: the dashboard as a user opens it: `seqlens monitor` on Beauty, then a headless Chromium screenshot
DASHBOARD = ROOT / "docs" / "monitoring-dashboard.png"
CHROMIUM = "/usr/bin/chromium"


def screenshot() -> None:
    """Replay Beauty with the CLI (weekly windows, the defaults) and photograph its dashboard.html in Chromium."""
    out = Path(tempfile.mkdtemp(prefix="seqlens-monitor-"))
    beauty = DATA / "beauty"
    if not (RUNS / "beauty").is_dir():
        raise SystemExit(f"no Beauty model in {RUNS}: run python -m benchmarks.explanations --stages train first")
    subprocess.run(
        [str(Path(sys.executable).parent / "seqlens"), "monitor", str(RUNS / "beauty"), str(beauty / "Beauty_item.txt"),
         "--format", "sequences", "--timestamps", str(beauty / "Beauty_time.txt"), "--window", "7d", "--out", str(out)],
        check=False, capture_output=True,
    )  # fmt: skip  # exit status 3 when an alert fires
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1500",
         f"--screenshot={DASHBOARD}", (out / "dashboard.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)


def service_section() -> list[str]:
    """The live side, from the serve_load runs that measured it (benchmarks/results/serve_*.json)."""
    lines = ["## The service: request log, rollback, alerting rules", ""]
    logged = _serve_result("serve_request_log.json", "request-log")
    if logged is not None:
        r, run = logged
        lines += [
            f"Request-log overhead (`{SERVE_COMMANDS['request-log']}`): three servers of `{run['model_dir']}` "
            f"({run['workers']} worker each) warmed alike, one writing the request log, one a control identical to "
            f"the plain one; {r['requests_each']} requests one at a time on each, in rounds: p50 "
            f"{r['without_log']['p50_ms']} -> {r['with_log']['p50_ms']} ms ({r['p50_ratio']}x; control "
            f"{r['control_p50_ratio']}x), p99 {r['without_log']['p99_ms']} -> {r['with_log']['p99_ms']} ms "
            f"({r['p99_ratio']}x; control {r['control_p99_ratio']}x); {r['records_written']} records written. "
            f"Target: within 5% ({'met' if max(r['p50_ratio'], r['p99_ratio']) <= 1.05 else '**not met**'}).",
            "",
        ]
        thread = _serve_result("serve_request_log_thread.json", "request-log")
        if thread is not None:
            t = thread[0]
            lines += [
                "The records are built and written by a child process of each worker. With the same benchmark, the",
                f"earlier writer, a thread of the worker, cost p50 {t['p50_ratio']}x and p99 {t['p99_ratio']}x (control "
                f"{t['control_p50_ratio']}x, {t['control_p99_ratio']}x): it took the interpreter lock from the requests.",
                "What remains is in the tail and comes from the writer's work, not the request path: with the",
                "writer discarding what it receives, p99 was 1.085x (control 1.058x), and with nothing sent at all",
                "1.056x (control 1.056x), against 1.30-1.38x writing (temporary switches, 2000 requests per round;",
                "on two cores the writer's bursts share the CPUs with the server and the load generator). The writer",
                "now writes once per frame it receives (about 0.1 s of requests) instead of once per micro-batch,",
                "each write costing a flush and a rollover check: 43 -> 29 us of CPU per record for one-request",
                "micro-batches, measured in one process on the same frames. Three runs after it gave p99 1.03-1.33x",
                "with controls of 0.92-1.12x: on this machine a p99 ratio moves by 10-15% between identical servers,",
                "so this benchmark cannot show a 5% bound at p99, and its runs say it is not met; the p50 is within it.",
                "",
            ]
    rolled = _serve_result("serve_rollback.json", "rollback")
    if rolled is not None:
        r, run = rolled
        r = r["concurrent"]
        by = r["by_variant"]
        lines += [
            f"Rollback under load (`{SERVE_COMMANDS['rollback']}`): a store holding `{run['model_dir']}` as versions 1 "
            f"and 2, {run['workers']} worker(s), {r['concurrency']} connections for {r['seconds']} s; "
            f"{by['rollback']['reloads']} rollbacks (statuses {by['rollback']['statuses']}, slowest "
            f"{by['rollback']['seconds_max']} s) alternating with {by['reload']['reloads']} promote-and-reloads: "
            f"{r['errors']} failed of {r['requests']} requests (p99 {r['p99_ms']} ms); memory "
            f"{r['rss_mib_before']} -> {r['rss_mib']} MiB.",
            "",
        ]
    lines += [
        "Alerting rules for the service's rolling-window gauges: deploy/prometheus/seqlens-alerts.yml, checked with",
        "`promtool check rules` and unit-tested with `promtool test rules tests/serve/alert_rules_test.yml` in the",
        "test suite (docs/serving.md lists the gauges and rules).",
        "",
    ]
    return lines


SERVE_COMMANDS = {
    "request-log": "python -m benchmarks.serve_load runs/demo/model --workers 1 --modes request-log --warmup 10 "
    "--sequential 1000 --out benchmarks/results/serve_request_log.json",
    "rollback": "python -m benchmarks.serve_load runs/demo/model --workers 2 --duration 30 --concurrency 8 "
    "--modes rollback --reload-every 2 --warmup 3 --sequential 100 --out benchmarks/results/serve_rollback.json",
}


def _serve_result(name: str, mode: str) -> tuple[dict, dict] | None:
    path = RESULTS.parent / name
    if not path.exists():
        return None
    run = json.loads(path.read_text())
    return (run["modes"][mode], run) if mode in run.get("modes", {}) else None


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(ATTRIBUTES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--render", action="store_true", help="only re-render docs/monitoring.md")
    parser.add_argument("--screenshot", action="store_true", help="only photograph the Beauty dashboard in Chromium")
    args = parser.parse_args(argv)
    if args.screenshot:
        screenshot()
        return
    torch.set_num_threads(1)
    if not args.render:
        for name in args.datasets.split(","):
            found = run(name, [int(s) for s in args.seeds.split(",")])
            if found is not None:  # merged into what is there now: runs of other datasets may be writing too
                results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                atomic.write_text(RESULTS, json.dumps({**results, name: found}, indent=1) + "\n")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    DOC.write_text(render(results))


if __name__ == "__main__":
    main(sys.argv[1:])
