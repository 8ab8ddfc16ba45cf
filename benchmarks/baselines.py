"""Is attention worth it? SASRec against every baseline on Beauty and MovieLens-1M, with paired CIs.

For each dataset: GRU4Rec is trained here (SASRec's loss, optimiser and budget), SASRec is the core benchmark's
model (runs/bench/<dataset>, benchmarks/core.py) or else the AWRSR study's plain SASRec
(runs/awrsr/<dataset>/none-seed0; trained here with the same settings when both are absent), Popular / MarkovChain / ItemKNN are fitted by `seqlens compare` itself. Then, through
the CLI a user would run:
- `seqlens compare ... --reference sasrec` on the leave-one-out split (paired bootstrap CIs, p-values,
  beyond-accuracy measures, breakdowns by history length and target popularity);
- the same on the global temporal split, with a SASRec trained on that split's training part;
- `seqlens calibrate` for SASRec (ECE before and after temperature scaling).
Writes docs/baselines/<dataset>/... and docs/baselines.md.

Usage: python -m benchmarks.baselines [beauty] [ml-1m] [--models gru4rec,temporal] [--epochs N] [--patience N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.core import DATA, PARAMS, load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs"
MODELS = ROOT / "runs" / "baselines"
SEQLENS = str(Path(sys.executable).with_name("seqlens"))


#: how the CLI reads each dataset (the same log as `core.load`, so the models' training data match)
CLI_DATA = {
    "beauty": ["--data", str(DATA / "beauty" / "Beauty_item.txt"), "--format", "sequences",
               "--timestamps", str(DATA / "beauty" / "Beauty_time.txt")],
    "ml-1m": ["--data", str(DATA / "ml-1m" / "ratings_users_1-2999.dat.gz"), "--format", "movielens"],
}  # fmt: skip


#: what GRU4Rec takes from the SASRec it is compared with: input, width and loss, and the whole optimiser and
#: budget (it keeps its own depth and dropout: 1 layer, 0.2)
SHARED_WITH_GRU = (
    "max_len",
    "dim",
    "loss",
    "lr",
    "lr_patience",
    "epochs",
    "patience",
    "batch_size",
    "weight_decay",
    "seed",
)


def wanted(dataset: str, cls_name: str, epochs: int | None, patience: int | None) -> dict:
    """The parameters a model trained here gets: SASRec as the core benchmark trains it (core.PARAMS over
    its defaults); GRU4Rec with that SASRec's SHARED_WITH_GRU. `epochs`/`patience` override the budget."""
    import seqlens

    sasrec = {**seqlens.SASRec().get_params(), **PARAMS[dataset], "progress": False}
    params = sasrec if cls_name == "SASRec" else {k: sasrec[k] for k in SHARED_WITH_GRU} | {"progress": False}
    if epochs:
        params["epochs"] = epochs
    if patience:
        params["patience"] = patience
    return params


def train(dataset: str, cls_name: str, split_name: str, epochs: int | None, patience: int | None) -> Path:
    """Train (or reuse, when every parameter matches) one neural model and return its directory."""
    import seqlens

    if cls_name == "SASRec" and split_name == "leave_one_out":
        # the core benchmark's model (full budget) first, then the AWRSR study's plain SASRec
        for saved in (ROOT / "runs" / "bench" / dataset, ROOT / "runs" / "awrsr" / dataset / "none-seed0"):
            if (saved / "config.json").exists():
                return saved
    params = wanted(dataset, cls_name, epochs, patience)
    out = MODELS / dataset / f"{cls_name.lower()}-{split_name}"
    if (out / "config.json").exists() and not seqlens.load(out).params_differ(params):
        return out
    log = load(dataset)
    split = seqlens.leave_one_out(log) if split_name == "leave_one_out" else seqlens.temporal_split(log)
    model = getattr(seqlens, cls_name)(**params)
    start = time.perf_counter()
    model.fit(split.train, valid=split.valid)
    best = max(model.history_, key=lambda r: r["ndcg@10"])
    print(f"{dataset} {cls_name} ({split_name}): best epoch {best['epoch']} of {len(model.history_)}, "
          f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
    model.save(out)
    return out


def _budget(model_dir: Path) -> dict:
    """Where a model came from and how long it trained (for the report)."""
    params = json.loads((model_dir / "config.json").read_text())["params"]
    history = json.loads((model_dir / "history.json").read_text())
    best = max(history, key=lambda r: r["ndcg@10"])
    return {"dir": str(model_dir.relative_to(ROOT)), "epochs_cap": params["epochs"], "epochs_run": len(history),
            "best_epoch": best["epoch"], "dropout": params["dropout"], "max_len": params["max_len"],
            "lr": params["lr"], "lr_patience": params.get("lr_patience", 0)}  # fmt: skip


def cli(*args: str) -> None:
    print("$ seqlens " + " ".join(args), flush=True)
    subprocess.run([SEQLENS, *args], check=True)


def run(dataset: str, epochs: int | None, patience: int | None, extra: set[str]) -> None:
    if load(dataset) is None:
        print(f"skip {dataset}: not under {DATA}")
        return
    out = DOCS / "baselines" / dataset
    metrics = ["--metrics", "ndcg@10,recall@10,recall@1,mrr@10"]
    budgets = {}
    neural = []
    if "gru4rec" in extra:
        gru = train(dataset, "GRU4Rec", "leave_one_out", epochs, patience)
        budgets["GRU4Rec"] = _budget(gru)
        neural.append(f"gru4rec={gru}")
    kept = MODELS / dataset / "sasrec-temporal"  # not retrained now: its report from an earlier run stays
    if "temporal" not in extra and (kept / "config.json").exists() and (out / "temporal" / "compare.md").exists():
        budgets["SASRec on the temporal split"] = _budget(kept)
    if "temporal" in extra:
        temporal = train(dataset, "SASRec", "temporal", epochs, patience)
        budgets["SASRec on the temporal split"] = _budget(temporal)
        cli("compare", f"sasrec={temporal}", "popular", "markov", "itemknn", *CLI_DATA[dataset], "--split", "temporal",
            "--reference", "sasrec", *metrics, "--out", str(out / "temporal"))  # fmt: skip
        (out / "temporal" / "gaps.json").write_text(json.dumps(temporal_gaps(dataset, temporal), indent=1))
    sasrec = train(
        dataset, "SASRec", "leave_one_out", epochs, patience
    )  # last: the AWRSR study may still be training it
    cli("compare", f"sasrec={sasrec}", *neural, "popular", "markov", "itemknn", *CLI_DATA[dataset],
        "--reference", "sasrec", *metrics, "--out", str(out / "leave_one_out"))  # fmt: skip
    (out / "models.json").write_text(json.dumps({"sasrec": _budget(sasrec), **budgets}, indent=1))
    cli("calibrate", str(sasrec), CLI_DATA[dataset][1], *CLI_DATA[dataset][2:], "--out", str(out / "calibration"))


#: gap buckets (days between a test user's last history item and the test item)
GAPS = [(0, 1, "up to 1 day"), (1, 30, "1 to 30 days"), (30, float("inf"), "over 30 days")]


def temporal_gaps(dataset: str, sasrec: Path, period_days: int = 30) -> dict:
    """Why the temporal split differs from leave-one-out: how long after their history the test users come
    back, and NDCG@10 per gap bucket for SASRec, Popular and Popular over the last `period_days` days."""
    import numpy as np
    import pandas as pd

    import seqlens

    log = load(dataset)
    split, loo = seqlens.temporal_split(log), seqlens.leave_one_out(log)

    def gaps(s) -> pd.Series:
        last = s.test_history.df.groupby("user_id")["timestamp"].max()
        test = s.test.df.set_index("user_id")["timestamp"]
        return (test - last.reindex(test.index)) / 86_400

    models = {"SASRec": seqlens.load(sasrec), "Popular": seqlens.Popular().fit(split.train),
              f"Popular, last {period_days} days": seqlens.Popular(period_days=period_days).fit(split.train)}  # fmt: skip
    ndcg = pd.DataFrame({name: seqlens.evaluate(m, split.test, split.test_history).per_user.set_index("user_id")["ndcg@10"]
                         for name, m in models.items()})  # fmt: skip
    gap, loo_gap = gaps(split).reindex(ndcg.index), gaps(loo)
    buckets = []
    for lo, hi, label in GAPS:
        sel = ((gap > lo) | (lo == 0)) & (gap <= hi)
        buckets.append({"gap": label, "users": int(sel.sum()), **{k: float(v) for k, v in ndcg[sel].mean().items()}})
    return {
        "cutoff": str(pd.to_datetime(int(np.quantile(log.df["timestamp"], 0.9)), unit="s")),
        "users": len(ndcg),
        "median_gap_days": float(gap.median()),
        "share_over_30_days": float((gap > 30).mean()),
        "leave_one_out_median_gap_days": float(loo_gap.median()),
        "leave_one_out_share_over_30_days": float((loo_gap > 30).mean()),
        "ndcg@10": {k: float(v) for k, v in ndcg.mean().items()},
        "buckets": buckets,
    }


def _gaps_lines(g: dict) -> list[str]:
    models = list(g["ndcg@10"])
    return [
        f"Why the temporal split differs: the cut-off (the 90% quantile of time) is {g['cutoff']}; the {g['users']} test "
        f"users' next interaction comes a median {g['median_gap_days']:.1f} days after their last history item "
        f"({100 * g['share_over_30_days']:.0f}% after more than 30 days), against {g['leave_one_out_median_gap_days']:.1f} "
        f"days ({100 * g['leave_one_out_share_over_30_days']:.0f}%) on the leave-one-out split. NDCG@10 by that gap:",
        "",
        "| gap | users | " + " | ".join(models) + " |",
        "|---|---:|" + "---:|" * len(models),
        *(f"| {b['gap']} | {b['users']} | " + " | ".join(f"{b[m]:.4f}" for m in models) + " |" for b in g["buckets"]),
        f"| all | {g['users']} | " + " | ".join(f"{g['ndcg@10'][m]:.4f}" for m in models) + " |",
        "",
    ]


def report(datasets: list[str]) -> None:
    lines = [
        "# Baselines: is attention worth it?",
        "",
        "Generated by `python -m benchmarks.baselines` (the comparisons run through `seqlens compare` and "
        "`seqlens calibrate`). Every table: full ranking over all items, seen items excluded, pessimistic ties; "
        "differences are paired per user against SASRec with a 95% bootstrap CI and a sign-flip p-value. "
        "SASRec on the leave-one-out split is the core benchmark's model (runs/bench/<dataset>, full budget) where "
        "it exists, else the AWRSR study's plain SASRec (seed 0, see docs/awrsr.md for its budget); its "
        "parameters are in each model's config.json. GRU4Rec and the temporal-split SASRec, when present, are "
        "trained here with that SASRec's optimiser and budget (learning rate and schedule, epoch cap, patience, "
        "batch size; GRU4Rec keeps its own depth and dropout) unless `--epochs`/`--patience` say otherwise.",
        "",
    ]
    for dataset in datasets:
        folder = DOCS / "baselines" / dataset
        if not (folder / "leave_one_out" / "compare.md").exists():
            continue
        lines += [f"# {dataset}", "", "## Leave-one-out", ""]
        models = json.loads((folder / "models.json").read_text()) if (folder / "models.json").exists() else {}
        for name, m in models.items():
            lines += [f"{'SASRec' if name == 'sasrec' else name} here: `{m['dir']}`, max_len {m['max_len']}, dropout "
                      f"{m['dropout']}, lr {m.get('lr', 1e-3):g}"
                      + (f" halved after {m['lr_patience']} epochs without improvement" if m.get("lr_patience") else " constant")
                      + f", trained {m['epochs_run']} epochs (cap {m['epochs_cap']}), best validation at epoch "
                      f"{m['best_epoch']}"
                      + (" (still improving at the cap: under-trained)" if m["best_epoch"] == m["epochs_run"] == m["epochs_cap"] else "")
                      + ".", ""]  # fmt: skip
        lines += _demote((folder / "leave_one_out" / "compare.md").read_text())
        lines += [f"![differences to SASRec](baselines/{dataset}/leave_one_out/compare.png)", ""]
        cal = json.loads((folder / "calibration" / "calibration.json").read_text())
        lines += [
            "## Calibration of SASRec's top-1 probability (test targets; temperature fitted on validation)",
            "",
            f"ECE over {_binning(cal)}.",
            "",
            "| temperature | ECE | users |",
            "|---:|---:|---:|",
            f"| 1.000 | {cal['ece']:.4f} | {cal['users']} |",
            f"| {cal['temperature']:.3f} | {cal['ece_scaled']:.4f} | {cal['users']} |",
            "",
            f"![reliability diagram](baselines/{dataset}/calibration/reliability.png)",
            "",
        ]
        if (folder / "temporal" / "compare.md").exists():
            lines += ["## Global temporal split", ""]
            lines += _demote((folder / "temporal" / "compare.md").read_text())
            if (folder / "temporal" / "gaps.json").exists():
                lines += _gaps_lines(json.loads((folder / "temporal" / "gaps.json").read_text()))
    path = DOCS / "baselines.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


def _demote(markdown: str) -> list[str]:
    """Nest a compare.md under this document's headings (# -> ###)."""
    return [("##" + line) if line.startswith("#") else line for line in markdown.splitlines()] + [""]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", default=["beauty", "ml-1m"])
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epoch cap of the models trained here (default: the core benchmark's SASRec budget)",
    )
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience (default: as --epochs)")
    parser.add_argument(
        "--models",
        default="gru4rec,temporal",
        help="what to train besides SASRec: gru4rec, temporal (a SASRec on the temporal split); '' for none",
    )
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.report_only:
        import torch

        torch.set_num_threads(1)
        for dataset in args.datasets:
            run(dataset, args.epochs, args.patience, {m.strip() for m in args.models.split(",") if m.strip()})
    report(["beauty", "ml-1m"])  # every dataset with results, not only the ones run now


if __name__ == "__main__":
    main(sys.argv[1:])


def _binning(cal: dict) -> str:
    """How the ECE in calibration.json was binned: equal-mass bins report their users, equal-width ones
    (runs before equal-mass binning) an edge grid of 1/15."""
    sizes = {row["users"] for row in cal["bins"]}
    if max(sizes) - min(sizes) <= 1:
        return f"{len(cal['bins'])} equal-mass bins"
    return "15 equal-width bins (this run predates equal-mass binning; `seqlens calibrate` now uses equal-mass bins)"
