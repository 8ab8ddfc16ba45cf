"""Peer libraries' SASRec next to ours: RecTools and RecBole on the same splits, scored by our metric code.

For each dataset the split is built by seqlens (`leave_one_out(core.load(name))`) and written to a
temporary folder under /tmp (the data's licences forbid copies in the repository); each peer is then
trained by benchmarks/peers_worker.py running in the peers' own virtual environment (.venv-peers, made
by `make bench-peers`), with the hyper-parameters of `core.PARAMS` and softmax cross-entropy loss, early
stopping on the validation item, and writes its top-20 list for every test user (seen items excluded,
full ranking). Those lists are scored here with seqlens' `evaluate` (the lists become scores: a target
outside the top 20 is a miss, which is exact for K <= 20), and seqlens' own SASRec is trained in the same
run with the same epoch cap, so every ratio comes from one run on one machine. A peer that fails to run
is reported with its error instead of stopping the benchmark.

Writes benchmarks/results/peers.json (datasets from earlier runs are kept unless re-run) and
docs/peers.md. Usage:
    python -m benchmarks.peers [--datasets beauty,ml-1m] [--peers rectools,recbole] [--epochs N]
                               [--users N] [--max-minutes M] [--threads N]
                               [--report [--rescore]]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import seqlens
from benchmarks import core
from benchmarks.peers_worker import cpu_name  # the worker imports no seqlens, so the driver can share its helpers
from seqlens.data.log import ITEM, USER
from seqlens.eval.compare import compare
from seqlens.eval.lists import score_lists
from seqlens.eval.protocol import EvalResult

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
WORKER = ROOT / "benchmarks" / "peers_worker.py"
RESULTS = ROOT / "benchmarks" / "results" / "peers.json"
DOC = ROOT / "docs" / "peers.md"
LISTS = ROOT / "runs" / "peers" / "lists"
K = 20
PEERS = ("rectools", "recbole")
LABELS = {"seqlens": "seqlens SASRec", "rectools": "RecTools SASRecModel", "recbole": "RecBole SASRec"}
TABLE_METRICS = ("ndcg@10", "recall@10", "recall@1", "ndcg@20", "recall@20")
# the settings shared with the peers, for the parameters core.PARAMS leaves out: seqlens' SASRec with a
# constant learning rate of 1e-3 (the peers have no plateau schedule), not its tuned defaults
DEFAULTS = {
    "max_len": 50,
    "dim": 64,
    "layers": 2,
    "heads": 1,
    "dropout": 0.5,
    "ffn_dim": None,
    "epochs": 200,
    "patience": 20,
    "batch_size": 128,
    "lr": 1e-3,
    "lr_patience": 0,
    "seed": 0,
}
PINNED = {"positions": "from_end", "rotary": False}


# --- top-K lists as a scorer for seqlens.evaluate -------------------------------------------------


def paired_to_seqlens(results: dict[str, EvalResult]) -> list[dict]:
    """Each peer's per-user NDCG@10 and Recall@10 against seqlens' on the same test users (`results` from
    `score_lists`): mean difference, paired bootstrap 95% CI, sign-flip p-value and verdict."""
    if "seqlens" not in results or len(results) < 2:
        return []
    table = compare(results, reference="seqlens", metrics=("ndcg@10", "recall@10"))
    return table[table["model"] != "seqlens"].to_dict("records")


def lists_folder(key: str) -> Path:
    """Where a run keeps every library's top-K lists (not tracked: they derive from the licensed data)."""
    return LISTS / key.replace(", ", "-").replace(" ", "")


# --- data and runs ---------------------------------------------------------------------------------


def build_split(name: str, n_users: int | None, seed: int = 0) -> tuple[seqlens.Split, str] | None:
    log = core.load(name)
    if log is None:
        return None
    if n_users:
        users = np.sort(log.df[USER].unique())
        if n_users < len(users):
            users = np.random.default_rng(seed).choice(users, n_users, replace=False)
            log = log.filter_users(users)
    return seqlens.leave_one_out(log), repr(log)


def write_split(split: seqlens.Split, folder: Path) -> None:
    """train/valid/test CSVs with a global `order` that keeps seqlens' within-user order (ties included)."""
    parts = []
    for part, sub in enumerate((split.train, split.valid, split.test)):
        parts.append(sub.df[[USER, ITEM]].assign(part=part, row=np.arange(len(sub))))
    allrows = pd.concat(parts, ignore_index=True).sort_values([USER, "part", "row"], kind="stable")
    allrows["order"] = np.arange(len(allrows), dtype=np.int64)
    for part, name in enumerate(("train", "valid", "test")):
        allrows.loc[allrows["part"] == part, [USER, ITEM, "order"]].to_csv(folder / f"{name}.csv", index=False)


def tail(text: str, lines: int = 25) -> str:
    """The end of a log: from its last traceback on when it has one (warnings before it are noise)."""
    rows = [row for row in text.strip().splitlines() if row.strip()]
    starts = [i for i, row in enumerate(rows) if row.startswith("Traceback")]
    if starts:
        rows = rows[starts[-1] :]
    return "\n".join(rows if len(rows) <= 2 * lines else rows[:5] + ["..."] + rows[-lines:])


def run_peer(peer: str, folder: Path, threads: int) -> dict:
    """Run the worker for `peer`; returns its result (with top-K lists read back) or {'error': ...}."""
    if not PEERS_PYTHON.exists():
        return {"error": f"{PEERS_PYTHON} is missing: run `make bench-peers` (it creates the peers' venv)"}
    out = folder / peer
    out.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    cmd = [str(PEERS_PYTHON), str(WORKER), peer, str(folder), str(out)]
    print(f"  {peer}: {shlex.join(cmd)}", flush=True)
    lines = []
    start = time.perf_counter()
    with subprocess.Popen(cmd, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:  # stream progress; keep everything for the error report
            lines.append(line)
            if line.startswith("[worker]") or "Error" in line or "Traceback" in line:
                print(f"    {line.rstrip()}", flush=True)
    (out / "worker.log").write_text("".join(lines))
    if proc.returncode != 0:
        how = (
            f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with code {proc.returncode}"
        )
        error = f"worker {how}:\n{tail(''.join(lines))}"
        for log in (PEERS_PYTHON.parents[1] / f"install-{peer}.log", PEERS_PYTHON.parents[1] / "install.log"):
            if log.exists() and log.read_text().strip():  # `make bench-peers` keeps pip's output of a failed install
                error += f"\n\nfrom {log.relative_to(ROOT)}:\n{tail(log.read_text(), 15)}"
                break
        return {"error": error, "wall_seconds_total": time.perf_counter() - start}
    result = json.loads((out / "result.json").read_text())
    result["recs"] = pd.read_csv(out / "recs.csv", dtype={USER: str, ITEM: str})
    return result


def run_ours(split: seqlens.Split, params: dict, threads: int) -> tuple[dict, pd.DataFrame]:
    model, fit, best = core.fit_timed(params, split)
    history = model.history_
    t0 = time.perf_counter()
    recs = model.recommend(users=split.test.df[USER].to_numpy(), k=K)
    recommend_seconds = time.perf_counter() - t0
    full = seqlens.evaluate(model, split.test, split.test_history)
    result = {
        "library": f"seqlens {seqlens.__version__}",
        "model": "seqlens.SASRec",
        "settings": {k: v for k, v in model.get_params().items() if k != "progress"},
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "seconds_per_epoch_median": float(np.median([r["train_seconds"] for r in history])),
        "wall_seconds_to_best": sum(
            r["train_seconds"] + r.get("valid_seconds", 0.0) for r in history if r["epoch"] <= best["epoch"]
        ),
        "wall_seconds_total_fit": fit,
        "recommend_seconds": recommend_seconds,
        "history": [
            {
                "epoch": r["epoch"],
                "train_seconds": r["train_seconds"],
                "valid_seconds": r.get("valid_seconds"),
                "valid_ndcg10": r["ndcg@10"],
                "loss": r["loss"],
            }
            for r in history
        ],
        "full_ranking_test": full.summary,  # seqlens.evaluate on the model itself (pessimistic ties)
        "machine": f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "differences": [],
    }
    return result, recs


def work_per_epoch(split: seqlens.Split, max_len: int, batch_size: int, seed: int = 0) -> dict:
    """What one epoch asks of each library's SASRec on `split`, counted from the data (not timed).

    steps: optimiser steps; positions: sequence positions run through the transformer; rows: positions
    scored against the whole catalogue by the softmax loss. seqlens batches users, cuts each batch to
    its longest member and scores only real targets (its positions are counted for one shuffle with
    `seed`, as epoch 1 draws it); RecTools pads every user to max_len and scores every position,
    padding included; RecBole trains on prefixes (one target each), each padded to max_len.
    """
    counts = split.train.df.groupby(USER).size().to_numpy()
    targets = np.minimum(counts[counts >= 2] - 1, max_len)  # a user's training targets inside the window
    order = np.random.default_rng(seed).permutation(len(targets))
    widths = [targets[order[lo : lo + batch_size]] for lo in range(0, len(targets), batch_size)]
    prefixes = int((counts - 1).clip(min=0).sum())
    return {
        "seqlens": {
            "steps": len(widths),
            "positions": int(sum(len(w) * w.max() for w in widths)),
            "rows": int(targets.sum()),
        },
        "rectools": {
            "steps": len(widths),
            "positions": len(targets) * max_len,
            "rows": len(targets) * max_len,
        },
        "recbole": {"steps": -(-prefixes // batch_size), "positions": prefixes * max_len, "rows": prefixes},
    }


def cold_targets(split: seqlens.Split) -> dict:
    """Share of validation and test targets that never occur in the training part: no library can rank them."""
    known = split.train.df[ITEM].unique()
    return {part: float(1 - getattr(split, part).df[ITEM].isin(known).mean()) for part in ("valid", "test")}


def shared_params(name: str, epoch_cap: int | None) -> dict:
    """seqlens' SASRec settings for `name` as the peers can match them: core.PARAMS over DEFAULTS, then
    PINNED (the peers have learned absolute positions and no rotary attention, whatever core.PARAMS tunes)."""
    params = {**DEFAULTS, **core.PARAMS[name], **PINNED, "progress": False}
    if epoch_cap:
        params["epochs"] = min(params["epochs"], epoch_cap)
    return params


def entry_key(name: str, users: int | None) -> str:
    """A subset run is kept next to the whole dataset's run, not in its place."""
    return f"{name}, {users} users" if users else name


def fill_in(key: str, entry: dict, rescore: bool = False) -> None:
    """Add what an entry written by an earlier version lacks: the work per epoch, the cold targets, and the
    paired differences where its top-K lists were kept (the split is rebuilt exactly: it depends only on the
    dataset, the user subset and its seed). With `rescore`, every kept list's metrics replace the entry's
    (for lists re-made after a fix that changes recommendations but not training)."""
    folder = lists_folder(key)
    kept = {f.stem: pd.read_csv(f, dtype={USER: str, ITEM: str}) for f in sorted(folder.glob("*.csv"))}
    if "work" in entry and "cold_targets" in entry and ("paired" in entry or len(kept) < 2) and not rescore:
        return
    built = build_split(entry["dataset"], entry.get("users_subset"))
    if built is None:
        return
    split = built[0]
    shared = entry["shared"]
    items = np.sort(split.train.df[ITEM].unique())
    entry["train"]["items"] = len(items)
    entry["work"] = work_per_epoch(split, shared["max_len"], shared["batch_size"], shared["seed"])
    entry["cold_targets"] = cold_targets(split)
    libs = entry["libraries"]
    scored = {lib: score_lists(recs, split, items) for lib, recs in kept.items()}
    if rescore:
        changed = [lib for lib, (sc, _) in scored.items() if lib in libs and sc["metrics"] != libs[lib].get("metrics")]
        for lib in changed:
            libs[lib].update(scored[lib][0])
        if changed:
            entry["rescored"] = {"date": time.strftime("%Y-%m-%d"), "libraries": changed}
    stale = [lib for lib, (sc, _) in scored.items() if sc["metrics"] != libs.get(lib, {}).get("metrics")]
    if stale:  # lists from another run would pair the wrong models
        print(f"{key}: the kept lists of {', '.join(stale)} do not score as the run did; no paired differences")
    elif len(kept) >= 2:
        entry["paired"] = paired_to_seqlens({lib: result for lib, (_, result) in scored.items()})


def run_dataset(name: str, args: argparse.Namespace, command: str) -> dict | None:
    built = build_split(name, args.users)
    if built is None:
        print(f"skip {name}: {core.DATA / name} is missing (the benchmark reads the data from there)")
        return None
    split, data = built
    params = shared_params(name, args.epochs)
    items = np.sort(split.train.df[ITEM].unique())
    print(f"{name}: {data}; {split.test.n_users} test users; at most {params['epochs']} epochs", flush=True)
    entry = {
        "dataset": name,
        "data": data,
        "command": command,
        "epoch_cap": args.epochs,
        "users_subset": args.users,
        "max_minutes": args.max_minutes,
        "threads": args.threads,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads per library",
        "date": time.strftime("%Y-%m-%d"),
        "shared": {
            k: params[k]
            for k in ("max_len", "dim", "layers", "heads", "dropout", "lr", "batch_size", "epochs", "patience", "seed")
        }
        | {"loss": "softmax cross-entropy", "k": K},
        "train": {"users": int(split.train.n_users), "interactions": len(split.train.df), "items": len(items)},
        "work": work_per_epoch(split, params["max_len"], params["batch_size"], params["seed"]),
        "cold_targets": cold_targets(split),
        "libraries": {},
    }
    lists: dict[str, pd.DataFrame] = {}
    evaluated: dict[str, EvalResult] = {}
    with tempfile.TemporaryDirectory(prefix=f"seqlens-peers-{name}-") as tmp:
        folder = Path(tmp)
        write_split(split, folder)
        cfg = {
            **entry["shared"],
            "ffn_dim": params["ffn_dim"] or params["dim"],
            "threads": args.threads,
            "max_minutes": args.max_minutes,
        }
        (folder / "config.json").write_text(json.dumps(cfg))
        if "seqlens" not in args.skip:
            print("  seqlens: training", flush=True)
            try:
                ours, recs = run_ours(split, params, args.threads)
                scored, evaluated["seqlens"] = score_lists(recs, split, items)
                entry["libraries"]["seqlens"] = {**ours, **scored}
                lists["seqlens"] = recs
            except Exception as exc:  # noqa: BLE001 - recorded in the report
                entry["libraries"]["seqlens"] = {"error": f"{type(exc).__name__}: {exc}"}
        for peer in args.peers:
            result = run_peer(peer, folder, args.threads)
            if "recs" in result:
                lists[peer] = result.pop("recs")
                try:
                    scored, evaluated[peer] = score_lists(lists[peer], split, items)
                    result.update(scored)
                except Exception as exc:  # noqa: BLE001 - recorded in the report
                    result = {"error": f"scoring failed: {type(exc).__name__}: {exc}", **result}
            entry["libraries"][peer] = result
            if "error" in result:
                print(f"  {peer}: FAILED\n{result['error']}", flush=True)
            else:
                m = result["metrics"]
                print(
                    f"  {peer}: NDCG@10 {m['ndcg@10']:.4f}, Recall@10 {m['recall@10']:.4f}, "
                    f"{result['seconds_per_epoch_median']:.1f} s/epoch, {result['epochs_run']} epochs",
                    flush=True,
                )
    kept_at = lists_folder(entry_key(name, args.users))
    kept_at.mkdir(parents=True, exist_ok=True)
    for lib, recs in lists.items():
        recs[[USER, ITEM, "rank"]].to_csv(kept_at / f"{lib}.csv", index=False)
    entry["paired"] = paired_to_seqlens(evaluated)
    return entry


# --- report ------------------------------------------------------------------------------------------


def _fmt(value, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _ratio(a, b) -> str:
    return "n/a" if a is None or not b else f"{a / b:.1f}x"


def render_paired(entry: dict) -> list[str]:
    """Each peer against seqlens, paired per test user."""
    rows = entry.get("paired")
    if not rows:
        return []
    libs = entry["libraries"]
    out = [
        (
            "Each peer against seqlens on the same test users (paired per user: mean difference, 95% bootstrap CI, "
            "sign-flip p-value):"
        ),
        "",
        "| library | metric | difference to seqlens | 95% CI | p | verdict |",
        "|---|---|---:|---|---:|---|",
    ]
    for r in rows:
        label = libs.get(r["model"], {}).get("library", LABELS.get(r["model"], r["model"]))
        out.append(
            f"| {label} | {r['metric']} | {r['diff']:+.4f} | [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | "
            f"{r['p_value']:.4f} | {r['verdict']} |"
        )
    return out + [""]


def render_work(entry: dict) -> list[str]:
    """The work-per-epoch table: why the libraries' seconds per epoch differ (counted, not timed)."""
    work = entry.get("work")
    if not work:
        return []
    ref = work["seqlens"]
    catalogue = f" ({entry['train']['items']} items)" if "items" in entry.get("train", {}) else ""
    out = [
        (
            "Work per epoch (counted from the split and the shared settings, not timed): optimiser steps, sequence "
            f"positions run through the transformer, and rows scored against the whole catalogue{catalogue} by the "
            "softmax loss, which dominates a step's cost when the catalogue is large."
        ),
        "",
        "| library | steps | positions | positions vs seqlens | catalogue rows | catalogue rows vs seqlens |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    how = {
        "seqlens": "batch = users, cut to its longest member; real targets only",
        "rectools": "batch = users, padded to max_len; every position scored, padding included",
        "recbole": "batch = prefixes, one target each, padded to max_len",
    }
    for lib in ("seqlens", *(p for p in PEERS if p in entry["libraries"])):
        w = work[lib]
        out.append(
            f"| {LABELS[lib]} ({how[lib]}) | {w['steps']} | {w['positions']:,} | "
            f"{_ratio(w['positions'], ref['positions'])} | {w['rows']:,} | {_ratio(w['rows'], ref['rows'])} |"
        )
    libs, timed = entry["libraries"], []
    ours = libs.get("seqlens", {}).get("seconds_per_epoch_median")
    for lib, count, label in (("rectools", "rows", "catalogue rows"), ("recbole", "positions", "positions")):
        theirs = libs.get(lib, {}).get("seconds_per_epoch_median")
        if ours and theirs:
            timed.append(f"{LABELS[lib]} {_ratio(theirs, ours)} (its {label} {_ratio(work[lib][count], ref[count])})")
    if timed:
        out += [
            "",
            "Measured seconds per epoch against seqlens, next to the count that differs most: "
            + "; ".join(timed)
            + ".",
        ]
    return out + [""]


def render(results: dict) -> str:
    out = [
        "# SASRec in peer libraries next to seqlens",
        "",
        "Generated by `make bench-peers` (benchmarks/peers.py); do not edit by hand. Each library's SASRec is",
        "trained on the same leave-one-out split of the same data (built by seqlens: last interaction = test,",
        "second-to-last = validation, identical within-user order), with softmax cross-entropy loss and the",
        "hyper-parameters of `benchmarks/core.py`, early-stopped on the validation item, and each one's top-20",
        "list for every test user (seen items excluded, ranked against all training items) is scored by",
        "seqlens' own metric code (`seqlens.evaluate`). Ratios are against seqlens' SASRec trained in the same",
        "run on the same machine with the same epoch cap. RecTools and RecBole run in their own virtual",
        "environment (`.venv-peers`) so their pins never touch seqlens' dependencies.",
        "",
    ]
    for name, entry in results.items():
        libs = entry["libraries"]
        ref = libs.get("seqlens", {})
        out += [f"## {name}", "", f"Data: {entry['data']}. Machine: {entry['machine']}. Run on {entry['date']}.", ""]
        notes = []
        if entry.get("epoch_cap"):
            notes.append(
                f"every library was capped at {entry['shared']['epochs']} epochs (`--epochs {entry['epoch_cap']}`), "
                "so accuracies are not converged values"
            )
        capped = [r.get("library", lib) for lib, r in libs.items() if r.get("stopped_by_time_cap")]
        if capped:
            notes.append(
                f"{' and '.join(capped)} stopped at the {entry['max_minutes']:g}-minute cap on training "
                "(`--max-minutes`) before early stopping ended it, so "
                + ("its accuracy is" if len(capped) == 1 else "their accuracies are")
                + " not converged"
            )
        if entry.get("rescored"):
            r = entry["rescored"]
            notes.append(
                f"the accuracy of {', '.join(r['libraries'])} was re-scored on {r['date']} from the kept top-K lists "
                "(`--report --rescore`); training and timings are the run's"
            )
        if entry.get("users_subset"):
            notes.append(
                f"a random subset of {entry['users_subset']} users was used (`--users`), not the whole dataset"
            )
        if "recbole" in libs and "work" in entry:
            ours, theirs = entry["work"]["seqlens"]["steps"], entry["work"]["recbole"]["steps"]
            notes.append(
                f"an epoch is {ours} optimiser steps for seqlens and {theirs} for RecBole ({theirs / ours:.0f}x more; "
                "see the work table), so at an equal epoch cap RecBole's accuracy reflects far more updates"
            )
        cold = entry.get("cold_targets", {})
        if cold.get("test", 0) >= 0.01:
            notes.append(
                f"{cold['test']:.0%} of the test targets (and {cold['valid']:.0%} of the validation targets) are items "
                "that never occur in the training part, a miss for every library; RecTools leaves such users out of "
                "its own validation, so its validation scores (not shown) read higher than the others'"
            )
        if notes:
            out += ["**Caveats:** " + "; ".join(notes) + ".", ""]
        out += [f"Command: `{entry['command']}`", ""]
        shared = ", ".join(f"{k}={v}" for k, v in entry["shared"].items())
        out += [f"Shared settings: {shared}.", ""]
        head = (
            "| library | epochs (best) | s/epoch | s/epoch vs seqlens | wall to best (s) | wall to best vs seqlens "
            "| total wall (s) | "
            + " | ".join(m.replace("recall", "Recall").replace("ndcg", "NDCG") for m in TABLE_METRICS)
            + " |"
        )
        out += [head, "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(TABLE_METRICS)]
        for lib, r in libs.items():
            label = r.get("library", LABELS.get(lib, lib))
            if "error" in r and "metrics" not in r:
                out.append(f"| {label} | failed: see below |" + " |" * (6 + len(TABLE_METRICS)))
                continue
            total = r.get("wall_seconds_total", r.get("wall_seconds_total_fit"))
            cells = [
                label,
                f"{r['epochs_run']} ({r['best_epoch']})",
                _fmt(r["seconds_per_epoch_median"]),
                _ratio(r["seconds_per_epoch_median"], ref.get("seconds_per_epoch_median")),
                _fmt(r["wall_seconds_to_best"]),
                _ratio(r["wall_seconds_to_best"], ref.get("wall_seconds_to_best")),
                _fmt(total),
                *(f"{r['metrics'][m]:.4f}" if m in r["metrics"] else "n/a" for m in TABLE_METRICS),
            ]
            out.append("| " + " | ".join(cells) + " |")
        out += [
            "",
            (
                "s/epoch: median training seconds per epoch (validation excluded); wall to best: training and "
                "validation seconds up to the best validation epoch; total wall: the whole run of that library "
                "(data preparation, training, recommending)."
            ),
            "",
        ]
        out += render_paired(entry)
        out += render_work(entry)
        for lib, r in libs.items():
            label = r.get("library", LABELS.get(lib, lib))
            if "error" in r:
                out += [f"**{label} failed:**", "", "```", r["error"], "```", ""]
                continue
            p = r["protocol"]
            extra = []
            if p.get("seen_items_in_lists"):
                extra.append(f"{p['seen_items_in_lists']} seen items in its lists (scored as wrong slots)")
            if p.get("users_without_list"):
                extra.append(f"{p['users_without_list']} test users got no list (misses)")
            if r.get("differences") or extra:
                out += [f"{label}: where it differs from seqlens' SASRec", ""]
                out += [f"- {d}" for d in [*r.get("differences", []), *extra]]
                out += [""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="beauty,ml-1m", help="comma-separated: beauty, ml-1m")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated: rectools, recbole")
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap for every library (ours included)")
    parser.add_argument("--users", type=int, default=None, help="random subset of N users (quick runs; reported)")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="wall-clock cap on each peer's training (checked between epochs; reported)",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads for every library")
    parser.add_argument("--skip", default="", help="'seqlens' to leave our own model out (no ratios then)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results JSON (other datasets in it are kept)")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown report")
    parser.add_argument("--report", action="store_true", help="only re-render the report from the results file")
    parser.add_argument(
        "--rescore", action="store_true", help="with --report: re-score every library from its kept top-K lists"
    )
    args = parser.parse_args(argv)
    if args.report:
        results = json.loads(args.results.read_text())
        for key, entry in results.items():
            fill_in(key, entry, args.rescore)
        write(results, args)
        return
    args.peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer {unknown[0]!r}; choose from {', '.join(PEERS)}")
    args.skip = [s for s in args.skip.split(",") if s]
    torch.set_num_threads(args.threads)
    command = "python -m benchmarks.peers " + shlex.join(argv) if argv else "python -m benchmarks.peers"
    datasets = [d for d in args.datasets.split(",") if d]
    for name in datasets:
        if name not in core.PARAMS:
            parser.error(f"unknown dataset {name!r}; choose from {', '.join(core.PARAMS)}")
    for name in datasets:
        entry = run_dataset(name, args, command)
        if entry is None:
            continue
        # read just before writing: a run takes hours, and another dataset's run may have finished meanwhile
        results = json.loads(args.results.read_text()) if args.results.exists() else {}
        results[entry_key(name, args.users)] = entry
        write(results, args)


def write(results: dict, args: argparse.Namespace) -> None:
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2, default=str))
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(render(results))
    print(f"wrote {args.results} and {args.doc}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
