"""The AWRSR study: SASRec against SASRec + attention weight refinement {simple, value, additive}.

Same hyper-parameters and epoch budget (with early stopping) for every variant, several seeds, on the
planted synthetic test bed, Beauty (L=50) and MovieLens-1M users 1-2999 (L=200); leave-one-out, full
ranking, seen items excluded. Each (dataset, variant, seed) trains in its own process (peak memory is per
process; finished runs are skipped, so an interrupted study resumes) and writes
benchmarks/results/awrsr/<dataset>/<variant>-seed<k>.json plus per-user metrics; models go to
runs/awrsr/<dataset>/<variant>-seed<k> (reused by the explanation study). Then the epoch-time overhead is
measured in one process, variants interleaved, and docs/awrsr.md is written from the results.

`--backbone bce` repeats the study on the backbone the paper most likely built on (the original SASRec's binary
cross-entropy with one negative, STOSA's Beauty settings) into results/awrsr/bce/: does refinement help against a
weaker baseline? docs/awrsr.md gets a section per dataset and backbone.

Usage:
  python -m benchmarks.awrsr_study [synthetic beauty ml-1m] [--seeds 3] [--jobs 2]   # each dataset's own budget
  python -m benchmarks.awrsr_study --one DATASET VARIANT SEED                      # one run, in this process
  python -m benchmarks.awrsr_study --report-only
  python -m benchmarks.awrsr_study beauty --backbone bce --seeds 3 --jobs 1   # the SASRec-BCE backbone
  python -m benchmarks.awrsr_study synthetic --round 2     # the first round re-run with the current code (gradient
                                                          # norms recorded), for benchmarks.awrsr_convergence
  python -m benchmarks.awrsr_study synthetic --round 2 --variants simple@r8,simple@last   # the design study
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.core import PARAMS, load  # the datasets and SASRec settings of the core benchmark

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "awrsr"
MODELS = ROOT / "runs" / "awrsr"
DOC = ROOT / "docs" / "awrsr.md"
IMG = ROOT / "docs" / "img"
VARIANTS = ("none", "simple", "value", "additive")
#: the second round's design study: r (the correlation space's dimension, 32 above) at 8 and 64, and refinement in
#: the last block only (above: every block); a variant is written REFINEMENT@r<N> or REFINEMENT@last
DESIGN_VARIANTS = ("simple@r8", "simple@r64", "simple@last", "additive@r8", "additive@r64", "additive@last")
DATASETS = ("synthetic", "beauty", "ml-1m")
METRICS = ("recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10", "mrr")
#: the paper's claimed Recall@1 gains (Liu, Liu, Liu, RecSys 2024)
PAPER_R1 = {"beauty": 7.22, "ml-1m": 9.81}


#: the test bed's settings: sequences of about 40 with triggers 10-40 steps back fit in L=50
TESTBED = dict(max_len=50, dim=64, layers=2, loss="ce", dropout=0.2, epochs=60, patience=10)
#: what every study run was trained with where SASRec's defaults have since moved on (a constant learning
#: rate before lr_patience; learned positions counted from the end, no rotary attention), pinned so that later
#: default changes neither mix into nor retrain the saved runs
STUDY_PINNED = dict(lr=1e-3, lr_patience=0, positions="from_end", rotary=False)
STUDY_PARAMS = {name: {**params, **STUDY_PINNED} for name, params in {**PARAMS, "synthetic": TESTBED}.items()}
#: the backbones refinement is tested on: our SASRec (full-softmax cross-entropy, the settings above), and one like
#: the paper most likely built on: the original SASRec loss (binary cross-entropy, one negative per position) with
#: STOSA's Beauty settings (1 block, 4 heads, dropout 0.3, 100 items on Beauty; the other datasets keep their window),
#: with a budget of 200 epochs and a patience of 20 (one negative learns slowly)
BACKBONES = {"ce": {}, "bce": dict(loss="bce", layers=1, heads=4, dropout=0.3, epochs=200, patience=20)}
BACKBONE_MAX_LEN = {"bce": {"beauty": 100}}
BACKBONE_NAMES = {"ce": "SASRec-CE", "bce": "SASRec-BCE"}


def _data(dataset: str):
    import seqlens

    if dataset == "synthetic":
        planted = seqlens.planted_log()
        return planted.log, planted.truth
    log = load(dataset)
    if log is None:
        raise SystemExit(f"{dataset}: not found under ../shared/data")
    return log, None


def results_dir(round_: int = 1, backbone: str = "ce") -> Path:
    """Where a round's run results go: the first round's at the top, later rounds' (the first round's settings
    re-run with the current code and measuring more, and new variants) in their own folder; another backbone's
    in a folder of its own within."""
    return _within(RESULTS, round_, backbone)


def models_dir(round_: int = 1, backbone: str = "ce") -> Path:
    return _within(MODELS, round_, backbone)


def _within(root: Path, round_: int, backbone: str) -> Path:
    folder = root if round_ == 1 else root / f"round{round_}"
    return folder if backbone == "ce" else folder / backbone


def variant_params(variant: str) -> dict:
    """The settings a variant name stands for: "simple" -> refinement simple; "simple@r8" -> also rank 8;
    "simple@last" -> refinement in the last block only."""
    refinement, *options = variant.split("@")
    params: dict = {"refinement": refinement}
    for option in options:
        if option == "last":
            params["refine_layers"] = [-1]
        elif option.startswith("r") and option[1:].isdigit():
            params["rank"] = int(option[1:])
        else:
            raise SystemExit(f"variant {variant!r}: {option!r} is neither r<N> nor last")
    return params


def study_params(dataset: str, backbone: str = "ce") -> dict:
    """The settings of `dataset`'s runs on `backbone` (refinement, seed and budget aside)."""
    window = BACKBONE_MAX_LEN.get(backbone, {}).get(dataset)
    return {**STUDY_PARAMS[dataset], **BACKBONES[backbone], **({"max_len": window} if window else {})}


def run_one(
    dataset: str,
    variant: str,
    seed: int,
    epochs: int | None,
    patience: int | None,
    threads: int,
    round_: int = 1,
    backbone: str = "ce",
) -> dict:
    """Train, evaluate and measure one model; returns (and writes) its result (under `results_dir(round_, backbone)`).

    `epochs` and `patience` override the dataset's budget (its core-benchmark settings, else SASRec's
    defaults) when given."""
    import torch

    import seqlens
    from seqlens.eval.protocol import targets_with_histories
    from seqlens.monitor import last_query_stats

    torch.set_num_threads(threads)
    log, truth = _data(dataset)
    split = seqlens.leave_one_out(log)
    budget = {k: v for k, v in (("epochs", epochs), ("patience", patience)) if v is not None}
    params = {**study_params(dataset, backbone), **variant_params(variant), "seed": seed, **budget}
    model = seqlens.SASRec(**params, progress=False)
    start = time.perf_counter()
    model.fit(split.train, valid=split.valid)
    fit_seconds = time.perf_counter() - start
    # on the test bed rule items recur by design, so a target already in the history stays rankable
    test = seqlens.evaluate(model, split.test, split.test_history, exclude_seen=dataset != "synthetic")
    per_user = test.per_user.copy()
    per_user["mrr"] = np.where(per_user["rank"] > 0, 1.0 / per_user["rank"].clip(lower=1), 0.0)
    history = model.history_
    best = max(history, key=lambda r: r["ndcg@10"])
    users, hist, _ = targets_with_histories(model, split.test, split.test_history)

    # attention of the last query (the one that makes the recommendation), raw A vs applied weights
    stats = {"raw": [], "applied": []}
    trigger_mass = []
    rows = np.arange(len(hist))
    truth_last = truth[truth["is_last"]].set_index("user_id") if truth is not None else None
    with torch.inference_mode():
        for lo in range(0, len(rows), 256):
            part = rows[lo : lo + 256]
            seq = torch.from_numpy(hist.padded(part, model.max_len))
            _, attentions = model.net_(seq, return_attention=True)
            keep = seq != 0
            for kind in stats:
                s = last_query_stats([getattr(a, kind) for a in attentions], keep)
                stats[kind].append((s.entropy.numpy(), s.last_mass.numpy()))
            if truth_last is not None:
                trigger_mass += _trigger_mass(users[part], hist.lengths[part], seq.shape[1], attentions, truth_last)
    attention = {
        kind: {
            "entropy": np.concatenate([e for e, _ in v]).mean(0).tolist(),
            "last_mass": np.concatenate([m for _, m in v]).mean(0).tolist(),
        }
        for kind, v in stats.items()
    }
    result = {
        "dataset": dataset,
        "variant": variant,
        "seed": seed,
        "data": repr(log),
        "params": model.get_params(),
        "protocol": test.protocol,
        "test": {**test.summary, "mrr": float(per_user["mrr"].mean())},
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "best_valid_ndcg@10": best["ndcg@10"],
        "seconds_per_epoch_median": statistics.median(r["train_seconds"] for r in history),
        "wall_seconds_to_best": sum(
            r["train_seconds"] + r.get("valid_seconds", 0.0) for r in history if r["epoch"] <= best["epoch"]
        ),
        "fit_seconds": fit_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": threads,
        "attention": attention,
        "history": history,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
    }
    if truth_last is not None:
        result["testbed"] = _testbed_summary(per_user, truth_last, trigger_mass)
    out = results_dir(round_, backbone) / dataset
    out.mkdir(parents=True, exist_ok=True)
    per_user[["user_id", "rank", "history_len", *METRICS]].to_parquet(out / f"{variant}-seed{seed}.per_user.parquet")
    model.save(models_dir(round_, backbone) / dataset / f"{variant}-seed{seed}")
    (out / f"{variant}-seed{seed}.json").write_text(json.dumps(result, indent=1))
    return result


def _trigger_mass(users, lengths, width, attentions, truth_last) -> list[dict]:
    """Per rule-governed test user: the last query's weight on the true trigger(s), per layer, raw and applied."""
    out = []
    for b, (user, h) in enumerate(zip(users, lengths)):
        if user not in truth_last.index:
            continue
        case = truth_last.loc[user]
        shown = min(h, width)
        cols = [width - shown + (p - (h - shown)) for p in case["triggers"] if p >= h - shown]
        if len(cols) < len(case["triggers"]):
            continue  # a trigger fell outside the model's window
        row = {"user_id": user, "rule": case["rule"], "uniform": 1.0 / shown}
        for kind in ("raw", "applied"):
            w = [getattr(a, kind)[b, :, -1, :].mean(0) for a in attentions]  # per layer, head mean
            row[f"{kind}_all"] = [float(x[cols].sum()) for x in w]
            row[f"{kind}_first"] = [float(x[cols[0]]) for x in w]  # A: the distant trigger
        out.append(row)
    return out


def _testbed_summary(per_user: pd.DataFrame, truth_last: pd.DataFrame, trigger_mass: list[dict]) -> dict:
    governed = per_user.set_index("user_id").join(truth_last[["rule"]], how="inner")
    mass = pd.DataFrame(trigger_mass)
    summary = {}
    for rule, group in governed.groupby("rule"):
        m = mass[mass["rule"] == rule]
        summary[rule] = {
            "n": int(len(group)),
            "recall@1": float(group["recall@1"].mean()),
            "recall@10": float(group["recall@10"].mean()),
            "n_mass": int(len(m)),
            "uniform_mass": float(m["uniform"].mean()),
            **{
                f"{kind}_{what}": np.mean(np.stack(m[f"{kind}_{what}"].to_numpy()), axis=0).tolist()
                for kind in ("raw", "applied")
                for what in ("all", "first")
            },
        }
    return summary


#: training users timed per overhead epoch: a few seconds each, so many interleaved rounds fit in minutes
OVERHEAD_USERS = {"beauty": 6000, "ml-1m": 1000, "synthetic": 2000}


def overhead(dataset: str, rounds: int, threads: int, backbone: str = "ce") -> dict:
    """Seconds for one training epoch over a fixed subset of users, per variant, interleaved in one process.

    Each round runs every variant once, in a rotated order (so drift in machine load spreads evenly); the
    ratio of medians to SASRec's is the overhead.
    """
    import torch

    import seqlens

    torch.set_num_threads(threads)
    train = overhead_users(dataset)
    params = study_params(dataset, backbone)
    times = interleaved_epochs(lambda v: seqlens.SASRec(**{**params, "refinement": v, "epochs": 1}, progress=False),
                               VARIANTS, train, rounds)  # fmt: skip
    return {"dataset": dataset, "backbone": backbone, "max_len": params["max_len"], "users": train.n_users,
            "threads": threads, "rounds": rounds, **times}  # fmt: skip


def overhead_users(dataset: str):
    """The training users an overhead epoch is timed over (the first `OVERHEAD_USERS` of the training split)."""
    import seqlens

    train = seqlens.leave_one_out(_data(dataset)[0]).train
    return train.filter_users(train.users[: OVERHEAD_USERS[dataset]])


def interleaved_epochs(model_of, variants: tuple[str, ...], train, rounds: int) -> dict:
    """Seconds of one training epoch of `model_of(variant)` on `train`, `rounds` times per variant, the variants
    taking turns in a rotated order; their medians, and each median over the first variant's (the ratio)."""
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        for variant in variants[r % len(variants) :] + variants[: r % len(variants)]:
            model = model_of(variant)
            model.fit(train)
            times[variant].append(model.history_[0]["train_seconds"])
    medians = {v: statistics.median(t) for v, t in times.items()}
    return {"seconds": times, "median": medians, "ratio": {v: medians[v] / medians[variants[0]] for v in variants}}


# ---------------------------------------------------------------------------------------------- report


def load_results(round_: int = 1, backbone: str = "ce") -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """Saved runs of a round per dataset, and the runs left out because an earlier study trained them with a smaller
    (epochs, patience) budget than the dataset's largest: every row of a table compares like with like."""
    found, left_out = {}, {}
    for dataset in DATASETS:
        runs = [
            json.loads(f.read_text()) for f in sorted((results_dir(round_, backbone) / dataset).glob("*-seed*.json"))
        ]
        if runs:
            budget = max(map(_budget, runs))
            found[dataset] = [r for r in runs if _budget(r) == budget]
            left_out[dataset] = [
                f"{r['variant']}-seed{r['seed']} ({_budget(r)[0]} epochs)" for r in runs if _budget(r) != budget
            ]
    return found, left_out


def _budget(run: dict) -> tuple[int, int]:
    return run["params"]["epochs"], run["params"]["patience"]


def dataset_budget(dataset: str, backbone: str = "ce") -> tuple[int, int]:
    """The (epochs, patience) the study trains `dataset` with: its settings, else SASRec's defaults."""
    import seqlens

    model = seqlens.SASRec(**study_params(dataset, backbone))
    return model.epochs, model.patience


def _done(
    dataset: str, variant: str, seed: int, budget: tuple[int, int], round_: int = 1, backbone: str = "ce"
) -> bool:
    """Whether this run is saved with this budget (a run saved with another budget is trained again)."""
    path = results_dir(round_, backbone) / dataset / f"{variant}-seed{seed}.json"
    return path.exists() and _budget(json.loads(path.read_text())) == budget


def paired_seeds(folder: Path, variant: str, seeds: set[int]) -> list[int]:
    """The seeds among `seeds` whose per-user files for `variant` and `none` are both on this machine (they are
    not committed: a fresh clone pairs only the runs it trained)."""

    def present(v: str, s: int) -> bool:
        return (folder / f"{v}-seed{s}.per_user.parquet").exists()

    return sorted(s for s in seeds if present(variant, s) and present("none", s))


def paired_runs(folder: Path, variant: str, seeds: list[int], metric: str = "ndcg@10"):
    """Per-user `metric` of `variant` minus the unrefined model's (`none`), from the per-user files in `folder`,
    seeds pooled (each seed paired with the same seed)."""
    from seqlens.eval.significance import paired_difference

    a, b = [], []
    for s in seeds:
        va = pd.read_parquet(folder / f"{variant}-seed{s}.per_user.parquet")
        vb = pd.read_parquet(folder / f"none-seed{s}.per_user.parquet")
        merged = va.merge(vb, on="user_id", suffixes=("_a", "_b"))
        a.append(merged[f"{metric}_a"].to_numpy())
        b.append(merged[f"{metric}_b"].to_numpy())
    return paired_difference(np.concatenate(a), np.concatenate(b))


def _fmt(values: list[float], digits: int = 4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _dataset_section(dataset: str, runs: list[dict], overheads: dict, backbone: str = "ce") -> tuple[list[str], dict]:
    from seqlens.eval.report import figure_png, pyplot

    folder = results_dir(1, backbone) / dataset
    name = dataset if backbone == "ce" else f"{dataset}, {BACKBONE_NAMES[backbone]} backbone"
    image = f"awrsr_{dataset}_curves.png" if backbone == "ce" else f"awrsr_{backbone}_{dataset}_curves.png"

    by_variant = {v: [r for r in runs if r["variant"] == v] for v in VARIANTS}
    by_variant = {v: sorted(rs, key=lambda r: r["seed"]) for v, rs in by_variant.items() if rs}
    ref = by_variant.get("none", [])
    seen = "seen items excluded" if runs[0]["protocol"]["exclude_seen"] else "seen items kept (rule items recur)"
    lines = [f"## {name}", "", f"Data: `{runs[0]['data']}`. Protocol: leave-one-out, "
             f"{runs[0]['protocol']['ranking']}, {seen}, pessimistic ties, "
             f"{runs[0]['protocol']['n_users']} test users. Parameters: `{_params_line(runs[0]['params'])}`.", ""]  # fmt: skip
    lines += [
        "| model | seeds | " + " | ".join(METRICS) + " | Δ Recall@1 | Δ NDCG@10 |",
        "|---|---:|" + "---:|" * (len(METRICS) + 2),
    ]
    facts = {}
    for v, rs in by_variant.items():
        cells = [_fmt([r["test"][m] for r in rs]) for m in METRICS]
        rel = []
        for m in ("recall@1", "ndcg@10"):
            if ref and v != "none":
                base = np.mean([r["test"][m] for r in ref])
                rel.append(f"{100 * (np.mean([r['test'][m] for r in rs]) / base - 1):+.1f}%")
            else:
                rel.append("")
        lines.append(f"| {_label(v)} | {len(rs)} | " + " | ".join(cells) + " | " + " | ".join(rel) + " |")
    lines += ["", "Paired per-user NDCG@10 difference to SASRec (seeds pooled, each seed paired with the same seed; "
              "95% bootstrap CI, sign-flip p-value):", "",
              "| model | mean difference | 95% CI | p | users×seeds | verdict |", "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for v, rs in by_variant.items():
        if v == "none" or not ref:
            continue
        seeds = paired_seeds(folder, v, {r["seed"] for r in rs} & {r["seed"] for r in ref})
        if not seeds:
            lines.append(f"| {_label(v)} | (per-user results not on this machine: train the runs again) | | | | |")
            continue
        d = paired_runs(folder, v, seeds)
        r1 = paired_runs(folder, v, seeds, "recall@1")
        r1_ref = np.mean([r["test"]["recall@1"] for r in ref if r["seed"] in seeds])
        facts[v] = {"diff": d, "r1": r1, "seeds": len(seeds), "r1_rel": 100 * r1.mean / r1_ref}  # on the paired seeds
        lines.append(
            f"| {_label(v)} | {d.mean:+.4f} | [{d.low:+.4f}, {d.high:+.4f}] | {d.p_value:.3f} | {d.n} | {d.verdict} |"
        )
    lines += ["", "Cost and learning speed (per-run medians, mean over seeds; each run in its own process "
              f"on {runs[0]['threads']} thread(s), runs in parallel, so seconds include contention; the overhead "
              "ratio below is the clean comparison):", "",
              "| model | epochs to best valid | epochs run | s/epoch | s to best | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for v, rs in by_variant.items():
        lines.append(
            f"| {_label(v)} | {_fmt([r['best_epoch'] for r in rs], 1)} | {_fmt([r['epochs_run'] for r in rs], 1)} | "
            f"{np.mean([r['seconds_per_epoch_median'] for r in rs]):.1f} | {np.mean([r['wall_seconds_to_best'] for r in rs]):.0f} | "
            f"{np.mean([r['peak_rss_mib'] for r in rs]):.0f} |"
        )
    if dataset in overheads:
        o = overheads[dataset]
        lines += ["", f"Epoch-time overhead measured in one process, variants interleaved in rotated order, "
                  f"{o['rounds']} rounds of one epoch over {o['users']} training users, {o['threads']} thread(s), "
                  f"L={o['max_len']}, median seconds: "
                  + ", ".join(f"{_label(v)} {o['median'][v]:.1f} s ({o['ratio'][v]:.2f}x)" for v in VARIANTS) + "."]  # fmt: skip
    lines += ["", "Attention of the last query (the one that makes the recommendation), mean over test users and "
              "heads, per layer: entropy (nats) and the mass on the most recent item, raw A vs the weights applied to V:",
              "", "| model | entropy raw | entropy applied | last-item mass raw | last-item mass applied |", "|---|---|---|---|---|"]  # fmt: skip
    for v, rs in by_variant.items():
        att = rs[0]["attention"]
        lines.append(
            f"| {_label(v)} | {_layers(att['raw']['entropy'])} | {_layers(att['applied']['entropy'])} | "
            f"{_layers(att['raw']['last_mass'])} | {_layers(att['applied']['last_mass'])} |"
        )
    if "testbed" in runs[0]:
        lines += _testbed_lines(by_variant)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for v, rs in by_variant.items():
        h = rs[0]["history"]
        ax.plot([r["epoch"] for r in h], [r["ndcg@10"] for r in h], label=_label(v))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title(f"{name}: learning curves (seed {next(iter(by_variant.values()))[0]['seed']})")
    ax.legend()
    IMG.mkdir(parents=True, exist_ok=True)
    (IMG / image).write_bytes(figure_png(fig))
    lines += ["", f"![validation NDCG@10 per epoch](img/{image})", ""]
    return lines, facts


def _testbed_lines(by_variant: dict) -> list[str]:
    lines = ["", "Planted rules (test users whose last item is rule-governed): accuracy, and the last query's "
             "attention mass on the true trigger(s), per layer, raw vs applied (uniform = 1/history length; "
             "'A' = the distant trigger alone):", "",
             "| model | rule | users | Recall@1 | Recall@10 | mass on triggers raw | applied | mass on A raw | applied | uniform |",
             "|---|---|---:|---:|---:|---|---|---|---|---:|"]  # fmt: skip
    for v, rs in by_variant.items():
        for rule in sorted(rs[0]["testbed"]):
            t = [r["testbed"][rule] for r in rs]
            mean_layers = lambda key, t=t: np.mean([x[key] for x in t], axis=0).tolist()  # noqa: E731
            lines.append(
                f"| {_label(v)} | {rule} | {t[0]['n']} | {_fmt([x['recall@1'] for x in t])} | {_fmt([x['recall@10'] for x in t])} | "
                f"{_layers(mean_layers('raw_all'))} | {_layers(mean_layers('applied_all'))} | "
                f"{_layers(mean_layers('raw_first'))} | {_layers(mean_layers('applied_first'))} | {np.mean([x['uniform_mass'] for x in t]):.3f} |"
            )
    return lines


def _layers(values: list[float]) -> str:
    return " / ".join(f"{x:.3f}" for x in values)


def _label(variant: str) -> str:
    return "SASRec" if variant == "none" else f"AWRSR-{variant}"


def _params_line(params: dict) -> str:
    """The settings that matter, pinned ones included (a run saved before one existed was trained as pinned)."""
    params = {**STUDY_PINNED, **params}
    keys = ("max_len", "dim", "layers", "heads", "dropout", "loss", "rank", "refine_layers", "epochs", "patience", "lr",
            "lr_patience", "positions", "rotary", "batch_size")  # fmt: skip
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params)


def _verdict(label: str, facts: dict, dataset: str) -> str:
    """The plain statement the issue asks for, computed from the measured numbers (`label`: the dataset and backbone)."""
    if not facts:
        return f"- {label}: no refined variant was run."
    best = max(facts, key=lambda v: facts[v]["diff"].mean)
    d, r1 = facts[best]["diff"], facts[best]["r1_rel"]
    claim = f" (the paper claims {PAPER_R1[dataset]:+.2f}% Recall@1)" if dataset in PAPER_R1 else ""
    line = (
        f"- {label}: the best variant by NDCG@10 is {_label(best)}: NDCG@10 {d.mean:+.4f} per user "
        f"(95% CI [{d.low:+.4f}, {d.high:+.4f}], p={d.p_value:.3f}: {d.verdict}), Recall@1 {r1:+.1f}%{claim}."
    )
    return line + ("\n" + _claim_verdict(label, facts, dataset) if dataset in PAPER_R1 else "")


def _claim_verdict(label: str, facts: dict, dataset: str) -> str:
    """Do we reproduce the paper's Recall@1 gain on `dataset`: its direction, its size, and is it detectable?"""
    paper = PAPER_R1[dataset]
    parts = [
        f"{_label(v)} {f['r1_rel']:+.1f}% (paired per-user difference {f['r1'].mean:+.4f}, p={f['r1'].p_value:.3f}, "
        f"{f['seeds']} seed(s))"
        for v, f in facts.items()
    ]
    up = [v for v, f in facts.items() if f["r1_rel"] > 0]
    detected = [v for v, f in facts.items() if f["r1"].verdict == "better"]
    size = [v for v, f in facts.items() if f["r1_rel"] >= paper / 2]
    said = (
        f"a gain in the point estimate for {', '.join(map(_label, up)) or 'no variant'}; a detectable gain (CI "
        f"excluding zero), which would reproduce the claim's direction, for {', '.join(map(_label, detected)) or 'no variant'}; "
        f"at least half the claimed size for {', '.join(map(_label, size)) or 'no variant'}"
    )
    return f"- {label}, the paper's claim of {paper:+.2f}% Recall@1: {'; '.join(parts)}. So: {said}."


def _trigger_verdict(runs: list[dict]) -> str:
    """Does refinement move the last query's weight onto the distant second-order trigger A? (per layer, seed mean)"""
    parts = []
    for v in VARIANTS:
        rs = [r for r in runs if r["variant"] == v and "second_order" in r["testbed"]]
        if rs:
            mass = np.mean([r["testbed"]["second_order"]["applied_first"] for r in rs], axis=0)
            parts.append(f"{_label(v)} {_layers(list(mass))}")
    return (
        "- test bed, second-order rules: weight the last query applies to the distant trigger A, per layer "
        f"(mean over {len({r['seed'] for r in runs})} seed(s)): " + "; ".join(parts) + "."
    )


def _design_lines() -> list[str]:
    """The second round's design study (`DESIGN_VARIANTS`) beside that round's SASRec and default variants."""
    results, _ = load_results(2)
    lines = []
    for dataset, runs in results.items():
        names = [v for v in ("simple", "additive", *DESIGN_VARIANTS) if any(r["variant"] == v for r in runs)]
        if not any("@" in v for v in names):
            continue
        folder, plain = results_dir(2) / dataset, {r["seed"] for r in runs if r["variant"] == "none"}
        lines += [f"## Design study on {dataset}: r and the refined blocks (second round)", "",
                  "The first round's settings, run again with the current code (`--round 2`), with r at 8 and 64 and "
                  "refinement in the last block only. Test split; differences per user against the same round's "
                  "SASRec of the same seed, seeds pooled (95% bootstrap interval, sign-flip p).", "",
                  "| variant | r | refined blocks | seeds | NDCG@10 | Recall@1 | NDCG@10 minus SASRec | 95% CI | p |",
                  "|---|---:|---|---:|---:|---:|---:|---|---:|"]  # fmt: skip
        for v in names:
            rs = [r for r in runs if r["variant"] == v]
            seeds = paired_seeds(folder, v, plain & {r["seed"] for r in rs})
            params = {**rs[0]["params"], **variant_params(v)}
            blocks = "last" if params.get("refine_layers") == [-1] else "all"
            cells = f"| {_label(v)} | {params['rank']} | {blocks} | {len(rs)} | " + " | ".join(
                _fmt([r["test"][m] for r in rs]) for m in ("ndcg@10", "recall@1")
            )
            if seeds:
                d = paired_runs(folder, v, seeds)
                cells += f" | {d.mean:+.4f} | [{d.low:+.4f}, {d.high:+.4f}] | {d.p_value:.3f} |"
            else:
                cells += " | (per-user results not on this machine) | | |"
            lines.append(cells)
        lines.append("")
    return lines


def _overhead_file(dataset: str, backbone: str) -> Path:
    return RESULTS / (f"overhead_{dataset}.json" if backbone == "ce" else f"overhead_{backbone}_{dataset}.json")


def report() -> None:
    sections, verdicts = [], []
    for backbone in BACKBONES:
        results, left_out = load_results(backbone=backbone)
        if not results and backbone == "ce":
            raise SystemExit(f"no results under {RESULTS}; run the study first")
        for dataset, runs in results.items():
            measured = _overhead_file(dataset, backbone)
            overheads = {dataset: json.loads(measured.read_text())} if measured.exists() else {}
            lines, facts = _dataset_section(dataset, runs, overheads, backbone)
            if left_out[dataset]:
                lines[1:1] = [
                    "",
                    f"Left out (trained with a smaller budget by an earlier study): {', '.join(left_out[dataset])}.",
                ]
            sections += lines
            label = dataset if backbone == "ce" else f"{dataset} ({BACKBONE_NAMES[backbone]})"
            verdicts.append(_verdict(label, facts, dataset))
            if "testbed" in runs[0]:
                verdicts.append(_trigger_verdict(runs))
            if dataset in overheads:
                o = overheads[dataset]
                verdicts.append(
                    f"- {label} epoch time (one process, interleaved): "
                    + ", ".join(f"{_label(v)} {o['ratio'][v]:.2f}x" for v in VARIANTS[1:])
                    + " of SASRec's."
                )
    head = [
        "# AWRSR: does attention weight refinement help?",
        "",
        "Generated by `python -m benchmarks.awrsr_study` (numbers from this code, on this repository's 2-core "
        "CPU machine); the mechanism is specified and implemented in `src/seqlens/nn/attention.py`. "
        "Every variant uses the same hyper-parameters, epoch budget and early stopping (patience on validation "
        "NDCG@10) as the SASRec it is compared with; refinement is applied in every layer with r=32.",
        "",
        "Learning speed, gradient norms and raw vs refined attention heatmaps of these runs: "
        "[awrsr-convergence.md](awrsr-convergence.md) (`python -m benchmarks.awrsr_convergence`).",
        "",
        "## Verdict",
        "",
        *verdicts,
        "",
    ]
    DOC.parent.mkdir(exist_ok=True)
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text("\n".join(head + sections + _design_lines()) + "\n")
    tmp.replace(DOC)
    print(f"wrote {DOC}")


# ---------------------------------------------------------------------------------------------- driver


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--epochs",
        type=int,
        help="epoch budget per run (default: the dataset's own: 60 on "
        "synthetic and ml-1m as in the core benchmark, SASRec's 200 on beauty)",
    )
    parser.add_argument("--patience", type=int, help="early-stopping patience (default: the dataset's own)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (each on 1 thread)")
    parser.add_argument("--overhead-rounds", type=int, default=8)
    parser.add_argument("--overhead-threads", type=int, default=2)
    parser.add_argument("--no-overhead", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--one",
        nargs=3,
        metavar=("DATASET", "VARIANT", "SEED"),
        help="train and evaluate one model in this process (what each parallel job runs)",
    )
    parser.add_argument("--overhead-of", metavar="DATASET", help=argparse.SUPPRESS)
    parser.add_argument(
        "--round",
        type=int,
        default=1,
        dest="round_",
        help="2: train into results/awrsr/round2 (the first round's runs re-run with the current code, which also "
        "records gradient norms); the report covers round 1",
    )
    parser.add_argument(
        "--backbone",
        choices=list(BACKBONES),
        default="ce",
        help="bce: the backbone the paper most likely built on (the original SASRec loss, one negative; 1 block, "
        "4 heads, dropout 0.3, 100 items on Beauty), into results/awrsr/bce",
    )
    args = parser.parse_args(argv)
    if args.one:
        dataset, variant, seed = args.one
        r = run_one(
            dataset,
            variant,
            int(seed),
            args.epochs,
            args.patience,
            threads=1,
            round_=args.round_,
            backbone=args.backbone,
        )
        print(f"{dataset} {variant} seed {seed}: NDCG@10 {r['test']['ndcg@10']:.4f} R@1 {r['test']['recall@1']:.4f} "
              f"best epoch {r['best_epoch']} ({r['fit_seconds']:.0f} s)")  # fmt: skip
        return
    if args.overhead_of:
        o = overhead(args.overhead_of, args.overhead_rounds, args.overhead_threads, args.backbone)
        _overhead_file(args.overhead_of, args.backbone).write_text(json.dumps(o, indent=1))
        print(json.dumps(o["ratio"]))
        return
    if not args.report_only:
        budgets = {}  # what each dataset's runs get: the overrides, else the dataset's own budget
        for d in args.datasets:
            epochs, patience = dataset_budget(d, args.backbone)
            budgets[d] = (
                epochs if args.epochs is None else args.epochs,
                patience if args.patience is None else args.patience,
            )
        jobs = [
            (d, v, s)
            for s in range(args.seeds)
            for d in args.datasets
            for v in args.variants.split(",")
            if not _done(d, v, s, budgets[d], args.round_, args.backbone)
        ]
        common = [f"--{k}={v}" for k, v in (("epochs", args.epochs), ("patience", args.patience)) if v is not None]
        common += [f"--round={args.round_}", f"--backbone={args.backbone}"]

        def launch(job):
            cmd = [sys.executable, __file__, "--one", job[0], job[1], str(job[2]), *common]
            done = subprocess.run(cmd, capture_output=True, text=True)
            print(done.stdout.strip() or f"{job} failed:\n{done.stderr[-2000:]}", flush=True)

        print(f"{len(jobs)} runs to do", flush=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(launch, jobs))
        if args.round_ != 1:  # later rounds are read by benchmarks.awrsr_convergence
            return
        if not args.no_overhead:
            for d in args.datasets:
                if d != "synthetic":
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    subprocess.run([sys.executable, __file__, "--overhead-of", d, "--overhead-rounds",
                                    str(args.overhead_rounds), "--overhead-threads", str(args.overhead_threads),
                                    f"--backbone={args.backbone}"], check=True)  # fmt: skip
    report()


if __name__ == "__main__":
    main(sys.argv[1:])
