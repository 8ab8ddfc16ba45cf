"""Core acceptance benchmark: SASRec (CE loss) vs popularity on Beauty and MovieLens-1M, full ranking.

Reads data from ../shared/data (skips a dataset whose folder is absent) and writes
benchmarks/results/core_<dataset>.json with test metrics (SASRec and the non-neural baselines), seconds
per epoch, peak memory and wall time to the best validation NDCG@10; the model goes to runs/bench/<dataset>. Usage: python -m benchmarks.core [beauty] [ml-1m] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

import seqlens

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
MODELS = Path(__file__).resolve().parents[1] / "runs" / "bench"


def load(name: str) -> seqlens.InteractionLog | None:
    """A shared dataset by name (`seqlens.DATASETS`), or None when this machine has no copy of it."""
    return seqlens.load_dataset(name, DATA) if seqlens.dataset_available(name, DATA) else None


# Beauty: the acceptance configuration (everything else default). ML-1M: dense, long histories, so the
# SASRec paper's dropout for it (0.2), rotary attention instead of position embeddings (see TUNING in
# report.py: better on ML-1M, worse on Beauty) and a cap of 60 epochs with patience 10 to bound the run on 2 cores.
PARAMS = {
    "beauty": dict(max_len=50, dim=64, layers=2, loss="ce"),
    "ml-1m": dict(
        max_len=200, dim=64, layers=2, loss="ce", dropout=0.2, positions="none", rotary=True, epochs=60, patience=10
    ),
}


def fit_timed(params: dict, split: seqlens.Split) -> tuple[seqlens.SASRec, float, dict]:
    """SASRec(**params) fitted on `split.train` with early stopping on `split.valid`: the model, the wall seconds
    of the fit, and the training record of its best epoch."""
    model = seqlens.SASRec(**params)
    start = time.perf_counter()
    model.fit(split.train, valid=split.valid)
    return model, time.perf_counter() - start, max(model.history_, key=lambda r: r["ndcg@10"])


def run(name: str, epochs: int | None, tag: str = "") -> dict | None:
    log = load(name)
    if log is None:
        print(f"skip {name}: {DATA} has no copy of it")
        return None
    split = seqlens.leave_one_out(log)
    params = dict(PARAMS[name])
    if epochs:
        params["epochs"] = epochs
    model, wall, best = fit_timed(params, split)
    test = seqlens.evaluate(model, split.test, split.test_history)
    baselines = {
        type(b).__name__: seqlens.evaluate(b.fit(split.train), split.test, split.test_history).summary
        for b in (seqlens.Popular(), seqlens.MarkovChain(), seqlens.ItemKNN())
    }
    history = model.history_
    to_best = sum(r["train_seconds"] + r.get("valid_seconds", 0.0) for r in history if r["epoch"] <= best["epoch"])
    epoch_seconds = [r["train_seconds"] for r in history]
    result = {
        "dataset": name,
        "data": repr(log),
        "params": model.get_params(),
        "protocol": test.protocol,
        "sasrec_test": test.summary,
        "popular_test": baselines["Popular"],
        "baselines_test": baselines,
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "best_valid_ndcg@10": best["ndcg@10"],
        "seconds_per_epoch_median": sorted(epoch_seconds)[len(epoch_seconds) // 2],
        "seconds_first_epoch": epoch_seconds[0],
        "wall_seconds_to_best": to_best,
        "wall_seconds_total_fit": wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "history": history,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    stem = f"{name}-{tag}" if tag else name
    model.save(MODELS / stem)  # reused by later studies (baselines, explanations); runs/ is not tracked
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"core_{stem}.json").write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "dataset",
                    "sasrec_test",
                    "popular_test",
                    "best_epoch",
                    "seconds_per_epoch_median",
                    "wall_seconds_to_best",
                    "peak_rss_mib",
                )
            },
            indent=1,
        )
    )
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="*", default=["beauty", "ml-1m"])
    parser.add_argument("--epochs", type=int, default=None, help="cap on epochs (default: the model default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a SASRec parameter, e.g. --set ffn_dim=256 (a JSON value)")  # fmt: skip
    parser.add_argument(
        "--tag", default="", help="suffix for the result file and model dir (tuning runs keep the reference intact)"
    )
    args = parser.parse_args(argv)
    for item in args.set:
        key, _, value = item.partition("=")
        for params in PARAMS.values():
            params[key] = json.loads(value)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.datasets:
        run(name, args.epochs, args.tag)


if __name__ == "__main__":
    main(sys.argv[1:])
