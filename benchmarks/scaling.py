"""Scaling benchmark: several training processes, large catalogues; writes benchmarks/results/scaling_*.json and
docs/scaling.md.

Stages (each one command; `report` rewrites docs/scaling.md from the JSON files):
    python -m benchmarks.scaling ddp        # Beauty, `seqlens train --nproc 1` (2 threads) then `--nproc 2` (1 each)
    python -m benchmarks.scaling catalogue  # a synthetic catalogue of 1,000,000 items: training steps, top-10
    python -m benchmarks.scaling report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "scaling"
DOC = ROOT / "docs" / "scaling.md"
#: Beauty's acceptance recipe (benchmarks/core.py), as flags of `seqlens train`
BEAUTY = ["--max-len", "50", "--dim", "64", "--layers", "2", "--loss", "ce"]


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"


def ddp(seed: int) -> None:
    """Beauty trained by one process with both cores' threads, then by two processes of one thread each, the
    same global batch and seed; wall time of each whole `seqlens train` (data, fit, test) and its test NDCG@10."""
    runs = {}
    for nproc in (1, 2):
        out = RUNS / f"beauty-nproc{nproc}-s{seed}"
        command = [sys.executable, "-m", "seqlens", "train", "--dataset", "beauty", "--data-root", str(DATA),
                   "--out", str(out), "--seed", str(seed), "--nproc", str(nproc), *BEAUTY]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "SEQLENS_DATA": str(DATA)})
        wall = time.perf_counter() - start
        history = json.loads((out / "history.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text())
        best = max(history, key=lambda r: r["ndcg@10"])
        runs[nproc] = {
            "wall_seconds": wall,
            "epochs_run": len(history),
            "best_epoch": best["epoch"],
            "seconds_per_epoch_median": sorted(r["train_seconds"] for r in history)[len(history) // 2],
            "test": metrics["test"],
            "machine": _machine(),
        }
        print(json.dumps({nproc: runs[nproc]}, indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"scaling_ddp_s{seed}.json").write_text(json.dumps({"seed": seed, "runs": runs}, indent=2))


def large_log(n_items: int, n_interactions: int, seed: int = 0) -> pd.DataFrame:
    """A log with structure to learn, made on the fly: users walk the catalogue in small steps (1 to 3 items on),
    and 30% of the time (and at their start) jump to an item drawn from a Zipf popularity."""
    rng = np.random.default_rng(seed)
    n_users = n_interactions // 100
    lengths = np.clip(rng.geometric(1 / 100, n_users), 5, 2000)
    lengths = np.maximum(5, np.round(lengths * n_interactions / lengths.sum()).astype(np.int64))
    lengths[-1] += n_interactions - lengths.sum()  # exactly n_interactions
    total = int(lengths.sum())
    users = np.repeat(np.arange(n_users), lengths)
    first = np.r_[True, users[1:] != users[:-1]]
    reset = first | (rng.random(total) < 0.3)
    popular = (rng.zipf(1.3, total) - 1) % n_items
    steps = np.where(reset, 0, rng.integers(1, 4, total)).cumsum()
    last_reset = np.maximum.accumulate(np.where(reset, np.arange(total), 0))
    items = (popular[last_reset] + steps - steps[last_reset]) % n_items
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": np.arange(total)})


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(task: str, path: Path) -> dict:
    """One measured task in this (fresh) process, so that its peak memory is its own."""
    import torch

    import seqlens
    from seqlens.recommenders.retrieval import ItemIndex, recall_against_exact

    start = time.perf_counter()
    if task == "read-pandas":
        frame = pd.read_parquet(path)
        return {"rows": len(frame), "seconds": time.perf_counter() - start, "peak_mib": _peak_mib()}
    if task == "read-seqlens":
        log = seqlens.read_interactions(path)
        return {"rows": len(log), "seconds": time.perf_counter() - start, "peak_mib": _peak_mib()}
    if task == "train":
        log = seqlens.read_interactions(path)
        read = time.perf_counter() - start
        model = seqlens.SASRec(**LARGE_MODEL)
        model.fit(log)
        model.save(RUNS / "large-model")
        return {"rows": len(log), "read_seconds": read, "epoch_seconds": model.history_[0]["train_seconds"],
                "steps": -(-int((model.histories_.lengths >= 2).sum()) // LARGE_MODEL["batch_size"]),
                "params": LARGE_MODEL, "peak_mib": _peak_mib(), "threads": torch.get_num_threads()}  # fmt: skip
    # task == "retrieve": exact top-10 for one user, and the approximate index against exact
    model = seqlens.load(RUNS / "large-model")
    users = list(model.user_ids_[np.random.default_rng(0).choice(len(model.user_ids_), 1000, replace=False)])
    times = []
    for user in users[:60]:
        t0 = time.perf_counter()
        model.recommend(users=[user], k=10)
        times.append(time.perf_counter() - t0)
    one_user = sorted(times[10:])  # the first calls warm up
    t0 = time.perf_counter()
    exact = model.recommend(users=users, k=10)
    exact_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = ItemIndex(model)
    build = time.perf_counter() - t0
    probes = {}
    for nprobe in (8, 16, 32, 64):
        index.index.nprobe = nprobe
        index.recommend(users=users[:50], k=10)  # warm
        t0 = time.perf_counter()
        approximate = index.recommend(users=users, k=10)
        seconds = time.perf_counter() - t0
        probes[nprobe] = {"recall@10": recall_against_exact(approximate, exact, 10), "seconds": seconds,
                          "speedup": exact_seconds / seconds}  # fmt: skip
    return {"items": model.n_items_, "one_user_ms_p50": 1000 * one_user[len(one_user) // 2],
            "one_user_ms_p99": 1000 * one_user[-1], "users": len(users), "exact_seconds": exact_seconds,
            "index": {"nlist": index.nlist, "build_seconds": build, "probes": probes},
            "threads": torch.get_num_threads(), "peak_mib": _peak_mib()}  # fmt: skip


#: the large-catalogue configuration: sampled softmax (memory per step independent of the catalogue), one epoch
LARGE_MODEL = dict(max_len=50, dim=64, layers=2, loss="sampled", n_negatives=256, batch_size=256, epochs=1)


def catalogue(n_items: int, n_interactions: int) -> None:
    """Write the synthetic log as Parquet, then measure reading it, one epoch of training and top-10 retrieval,
    each in its own process."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"large-{n_items}-{n_interactions}.parquet"
    start = time.perf_counter()
    frame = large_log(n_items, n_interactions)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    result: dict = {"items": n_items, "interactions": len(frame), "generate_seconds": time.perf_counter() - start,
                    "parquet_mib": path.stat().st_size / 2**20, "machine": _machine()}  # fmt: skip
    del frame
    for task in ("read-pandas", "read-seqlens", "train", "retrieve"):
        done = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "_child", task, str(path)], check=True,
                              capture_output=True, text=True, cwd=ROOT)  # fmt: skip
        result[task] = json.loads(done.stdout.strip().splitlines()[-1])
        print(task, json.dumps(result[task]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling_catalogue.json").write_text(json.dumps(result, indent=2))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["ddp", "catalogue", "report", "_child"])
    parser.add_argument("args", nargs="*", help="(_child: task and path)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=20_000_000)
    args = parser.parse_args(argv)
    if args.stage == "ddp":
        ddp(args.seed)
    elif args.stage == "catalogue":
        catalogue(args.items, args.interactions)
    elif args.stage == "_child":
        print(json.dumps(_child(args.args[0], Path(args.args[1]))))
    else:
        raise SystemExit("report: not written yet")


if __name__ == "__main__":
    main(sys.argv[1:])
