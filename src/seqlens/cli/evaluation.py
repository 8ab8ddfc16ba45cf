"""`seqlens evaluate`, `compare` and `calibrate`: a saved model against the data and against others.

The library is imported inside the commands (types under TYPE_CHECKING), so their --help loads neither torch
nor pandas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

import seqlens
from seqlens import atomic
from seqlens.cli.common import (
    Format,
    ModelDir,
    Timestamps,
    TrainingData,
    console,
    metrics_table,
    protocol_line,
    read_for,
    split_log,
    warn,
)
from seqlens.errors import SeqlensError

if TYPE_CHECKING:
    from seqlens.data import InteractionLog, Split
    from seqlens.recommenders import Recommender


def evaluate_cmd(
    model_dir: ModelDir,
    data: TrainingData,
    format: Format = "auto",
    timestamps: Timestamps = None,
    keep_seen: bool = typer.Option(False, help="Keep history items in the ranking (default: excluded)."),
    per_user: Path | None = typer.Option(None, help="Write per-user metrics (CSV or Parquet) here."),
    sampled: str | None = typer.Option(
        None, help="Rank against 100 sampled negatives (uniform or popularity) instead of all items; labelled SAMPLED."
    ),
) -> None:
    """Evaluate a saved model on the last interaction of each user in DATA, next to popularity."""
    from seqlens.data import leave_one_out
    from seqlens.eval import evaluate
    from seqlens.recommenders import Popular, load_model

    model = load_model(model_dir)
    # a model that reads the request's context reads each test event's own
    log = read_for(model, data, format, timestamps)
    split = leave_one_out(log)
    results = {
        name: evaluate(m, split.test, split.test_history, exclude_seen=not keep_seen, sampled=sampled)
        for name, m in ((type(model).__name__, model), ("Popular", Popular().fit(split.train)))
    }
    console.print(metrics_table(results, f"test metrics ({protocol_line(results['Popular'])})"))
    if per_user is not None:
        frame = results[type(model).__name__].per_user
        data_bytes = frame.to_parquet() if per_user.suffix == ".parquet" else frame.to_csv(index=False).encode()
        atomic.write_bytes(per_user, data_bytes)
        console.print(f"per-user metrics written to {per_user}")


#: the baselines `compare` fits itself: name -> the class's name in `seqlens` (imported when one is fitted)
BASELINES = {"popular": "Popular", "markov": "MarkovChain", "itemknn": "ItemKNN"}


def _runs_to_evaluate(specs: list[str], split: Split) -> dict[str, list[Recommender]]:
    """`[label=]dir[,dir...]` (several dirs = seeds of one model, pooled) or a baseline name, fitted here."""
    from seqlens.recommenders import load_model

    runs: dict[str, list[Recommender]] = {}
    for spec in specs:
        label, _, paths = spec.rpartition("=")
        if paths.lower() in BASELINES:
            runs[label or paths.lower()] = [getattr(seqlens, BASELINES[paths.lower()])().fit(split.train)]
            continue
        dirs = [p for p in paths.split(",") if p]
        runs[label or Path(dirs[0]).name] = [load_model(d) for d in dirs]
    return runs


def _beyond_tables(models: dict, results: dict, split: Split, keep_seen: bool) -> dict:
    """Beyond-accuracy measures of each model's top-10, and NDCG@10 by history length and by target popularity."""
    import pandas as pd

    from seqlens.eval.beyond import LENGTH_BUCKETS, beyond_accuracy, breakdown, by_target_popularity
    from seqlens.eval.protocol import item_counts, targets_with_histories, top_k_items

    beyond, by_length, by_popularity = {}, {}, {}
    for label, seeds in models.items():
        model = seeds[0]
        _, histories, targets = targets_with_histories(model, split.test, split.test_history)
        top = top_k_items(model, histories, 10, exclude_seen=not keep_seen)
        popularity = item_counts(model, split.train)
        beyond[label] = beyond_accuracy(top, popularity)
        per_user = results[label][0].per_user
        by_length[label] = breakdown(per_user, "history_len", LENGTH_BUCKETS, ["ndcg@10"])
        by_popularity[label] = by_target_popularity(per_user, targets, popularity, ["ndcg@10"])

    def table(parts: dict) -> pd.DataFrame:  # the same users for every model
        return pd.DataFrame(
            {"users": next(iter(parts.values()))["users"], **{k: v["ndcg@10"] for k, v in parts.items()}}
        )

    return {
        "Beyond accuracy (top-10)": pd.DataFrame(beyond).T,
        "NDCG@10 by history length": table(by_length),
        "NDCG@10 by popularity of the target (head/torso/tail: thirds of training interactions)": table(by_popularity),
    }


def _trained_elsewhere(models: dict, split: Split) -> list[str]:
    """Labels of loaded models whose training log is not this split's (their test targets may be training data)."""
    fingerprint = split.train.fingerprint()
    return [
        label for label, seeds in models.items()
        if any(m.dataset_.get("fingerprint", fingerprint) != fingerprint for m in seeds)
    ]  # fmt: skip


def compare_cmd(
    runs: list[str] = typer.Argument(
        ..., help="Model directories, 'label=dir1,dir2' to pool seeds, or a baseline: popular, markov, itemknn."
    ),
    data: str = typer.Option(..., help="Interaction file the models were trained on."),
    format: Format = "auto",
    timestamps: Timestamps = None,
    split_name: str = typer.Option(
        "leave_one_out",
        "--split",
        help="leave_one_out, or temporal (train before the 90% time quantile, test on the next interaction after it; "
        "models must have been trained on that split: run.split = 'temporal').",
    ),
    reference: str | None = typer.Option(None, help="Label of the reference model (default: the first run)."),
    metrics: str = typer.Option("ndcg@10,recall@10,recall@1,mrr@10", help="Comma-separated metrics."),
    keep_seen: bool = typer.Option(False, help="Keep history items in the ranking (default: excluded)."),
    out: Path = typer.Option(Path("runs/compare"), help="Directory for compare.md, compare.json, compare.png."),
) -> None:
    """Evaluate models on the same users and compare each with a reference: paired CIs, p-values, verdicts."""
    from seqlens.data import read_log
    from seqlens.eval import evaluate
    from seqlens.eval.compare import compare
    from seqlens.eval.report import write_comparison
    from seqlens.eval.significance import format_p

    if split_name not in ("leave_one_out", "temporal"):
        raise SeqlensError(f"--split {split_name!r}: choose leave_one_out or temporal")
    split = split_log(read_log(data, format, timestamps=timestamps), split_name)
    models = _runs_to_evaluate(runs, split)
    results = {
        label: [evaluate(m, split.test, split.test_history, exclude_seen=not keep_seen) for m in seeds]
        for label, seeds in models.items()
    }
    table = compare(results, reference or next(iter(results)), [m.strip() for m in metrics.split(",")])
    protocol = protocol_line(next(iter(results.values()))[0], split_name)
    for label in _trained_elsewhere(models, split):
        warn(f"{label} was not trained on this split's training data: its test targets may be in its training data")
        protocol += f"; WARNING: {label} was trained on other data than this split's training part"
    shown = Table(title=f"compared with {table.loc[table['verdict'] == 'reference', 'model'].iloc[0]} ({protocol})")
    for col in ("metric", "model", "mean", "diff", "95% CI", "p", "p Holm", "verdict"):
        shown.add_column(col)
    for r in table.itertuples():
        ci = "" if r.verdict == "reference" else f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        ps = ("", "") if r.verdict == "reference" else (format_p(r.p_value), format_p(r.p_holm))
        shown.add_row(r.metric, r.model, f"{r.mean:.4f}", f"{r.diff:+.4f}", ci, *ps, r.verdict)
    console.print(shown)
    write_comparison(table, out, f"Comparison on {data}", protocol, _beyond_tables(models, results, split, keep_seen))
    console.print(f"report written to [bold]{out / 'compare.md'}[/bold] (+ compare.json, compare.png)")


def calibrate(
    model_dir: Annotated[
        Path, typer.Argument(help="Model directory of a SASRec or GRU4Rec model (scores are logits).")
    ],
    data: TrainingData,
    format: Format = "auto",
    timestamps: Timestamps = None,
    out: Path | None = typer.Option(None, help="Directory for calibration.json and reliability.png."),
) -> None:
    """Expected calibration error of the top-1 probability, before and after temperature scaling.

    The temperature is fitted on the validation targets (lowest NLL) and applied to the test targets.
    """
    from seqlens.data import leave_one_out
    from seqlens.eval.calibration import reliability, top_one_probabilities
    from seqlens.eval.protocol import targets_with_histories
    from seqlens.eval.report import reliability_png
    from seqlens.recommenders import load_model

    model = load_model(model_dir)
    split = leave_one_out(read_for(model, data, format, timestamps))

    def probabilities(targets: InteractionLog, history: InteractionLog):
        _, histories, target_idx = targets_with_histories(model, targets, history)
        return top_one_probabilities(model, histories, target_idx)

    temperature = probabilities(split.valid, split.train).best_temperature()
    test = probabilities(split.test, split.test_history)
    (ece_raw, raw), (ece_scaled, scaled) = reliability(*test.at(1.0)), reliability(*test.at(temperature))
    table = Table(title="top-1 calibration on the test targets (temperature fitted on validation)")
    for col in ("temperature", "ECE", "mean top-1 probability", "top-1 accuracy"):
        table.add_column(col, justify="right")
    for t, ece in ((1.0, ece_raw), (temperature, ece_scaled)):
        conf, correct = test.at(t)
        table.add_row(f"{t:.3f}", f"{ece:.4f}", f"{conf.mean():.4f}", f"{correct.mean():.4f}")
    console.print(table)
    console.print(
        f"ECE over {len(raw)} equal-mass bins of about {len(test.correct) // max(len(raw), 1)} test users each"
    )
    if ece_scaled > ece_raw:
        warn(
            f"temperature scaling fitted on validation made the test ECE worse ({ece_raw:.4f} -> {ece_scaled:.4f}); "
            "keep the raw scores (T = 1)"
        )
    if out is not None:
        result = {"temperature": temperature, "ece": ece_raw, "ece_scaled": ece_scaled,
                  "bins": raw, "bins_scaled": scaled, "users": len(test.correct)}  # fmt: skip
        atomic.write_text(out / "calibration.json", json.dumps(result, indent=1))
        png = reliability_png({"raw": raw, f"T = {temperature:.2f}": scaled}, type(model).__name__)
        atomic.write_bytes(out / "reliability.png", png)
        console.print(f"written to [bold]{out}[/bold] (calibration.json, reliability.png)")
