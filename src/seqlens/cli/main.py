"""The `seqlens` command: demo, train, evaluate, recommend."""

from __future__ import annotations

import functools
import inspect
import json
import re
import time
import typing
import warnings
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import seqlens
from seqlens import atomic
from seqlens.cli.config import TRAINABLE, Config, load_config
from seqlens.data import InteractionLog, Split, leave_one_out, read_log, temporal_split
from seqlens.errors import SeqlensError
from seqlens.eval import EvalResult, evaluate
from seqlens.eval.significance import format_p
from seqlens.explain.attributions import METHODS
from seqlens.explain.explanation import DEFAULT_METHOD
from seqlens.params import Spec
from seqlens.recommenders import Popular, Recommender, SASRec, load_model
from seqlens.train import TrainingInterrupted

app = typer.Typer(
    help="Attention-based sequential recommendation that explains itself.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
#: errors go to stderr, unwrapped: a message is read (and grepped) whole, whatever the terminal width
errors = Console(stderr=True, soft_wrap=True)


@app.callback()
def _output() -> None:
    # piped into a file or a log: complete lines, no table cut to an assumed 80-column terminal
    if not console.is_terminal:
        console.width = 10_000


SHOWN = ("recall@1", "recall@10", "ndcg@10", "mrr@10", "recall@20", "ndcg@20")


def _warn(message: str) -> None:
    errors.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)


def _fail(message: str) -> None:
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(2)


def _load_data(cfg: Config) -> InteractionLog:
    d = cfg.data
    log = read_log(d.path, d.format, d.user, d.item, d.time, d.timestamps, d.titles)
    return log.kcore(d.kcore, d.kcore) if d.kcore else log


def _split(log: InteractionLog, how: str) -> Split:
    return leave_one_out(log) if how == "leave_one_out" else temporal_split(log)


def _metrics_table(results: dict[str, EvalResult], title: str) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for m in SHOWN:
        table.add_column(m, justify="right")
    for name, r in results.items():
        table.add_row(name, *(f"{r.summary[m]:.4f}" for m in SHOWN))
    return table


def _markdown_metrics(results: dict[str, EvalResult]) -> str:
    lines = ["| model | " + " | ".join(SHOWN) + " |", "|---|" + "---:|" * len(SHOWN)]
    lines += [f"| {n} | " + " | ".join(f"{r.summary[m]:.4f}" for m in SHOWN) + " |" for n, r in results.items()]
    return "\n".join(lines)


def _print_recommendations(model: Recommender, users: list[str], k: int) -> str:
    """Print top-k per user with titles; returns the same as Markdown for reports."""
    recs = model.recommend(users=users, k=k)
    titles = model.item_titles_
    md = []
    for user, group in recs.groupby("user_id", sort=False):
        recent = ", ".join(titles.get(i, i) for i in model.history_of(user)[-3:])
        console.print(f"\n[bold]user {user}[/bold]  (last items: {recent})")
        md.append(f"\n**user {user}** (last items: {recent})\n")
        for row in group.itertuples():
            console.print(f"  {row.rank}. {titles.get(row.item_id, row.item_id)}  [dim]({row.score:.3f})[/dim]")
            md.append(f"{row.rank}. {titles.get(row.item_id, row.item_id)} ({row.score:.3f})")
    return "\n".join(md)


#: fewer test users than this and a metric's confidence interval is wide: the protocol line says so
SMALL_TEST = 500


def _protocol_line(r: EvalResult, split: str = "leave_one_out") -> str:
    p = r.protocol
    small = f" (a SMALL test set: below {SMALL_TEST} users, differences are noisy)" if p["n_users"] < SMALL_TEST else ""
    return (
        f"{split.replace('_', '-')} test targets of {p['n_users']} users{small}, {p['ranking']} over "
        f"{p['n_items']} items, seen items {'excluded' if p['exclude_seen'] else 'kept'}, ties {p['ties']}"
    )


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Directory for the model and report."),
    epochs: int = typer.Option(40, help="Training epochs (early stopping may end sooner)."),
    seed: int = typer.Option(0, help="Seed for data generation and training."),
) -> None:
    """Train SASRec on the built-in synthetic data, compare with popularity, recommend, and explain one
    recommendation (narrative printed, HTML report saved)."""
    start = time.perf_counter()
    log = seqlens.synthetic_log(seed=seed)
    console.print(f"[bold]data[/bold]  {log}")
    split = leave_one_out(log)
    model = SASRec(max_len=50, dim=64, epochs=epochs, patience=5, dropout=0.2, seed=seed)
    model.fit(split.train, valid=split.valid)
    results = {
        "SASRec": evaluate(model, split.test, split.test_history),
        "Popular": evaluate(Popular().fit(split.train), split.test, split.test_history),
    }
    console.print(_metrics_table(results, "test metrics (full ranking, seen items excluded)"))
    users = list(model.user_ids_[:3])
    recs_md = _print_recommendations(model, users, k=5)
    model.metrics_ = {name: r.summary for name, r in results.items()}
    model.save(out / "model")
    report = (
        f"# seqlens demo\n\nData: {log}\n\nProtocol: {_protocol_line(results['SASRec'])}.\n\n"
        f"{_markdown_metrics(results)}\n\nBest validation epoch: "
        f"{max(model.history_, key=lambda r: r['ndcg@10'])['epoch']} of {len(model.history_)}.\n\n"
        f"## Top-5 recommendations\n{recs_md}\n"
    )
    atomic.write_text(out / "report.md", report)
    from seqlens.explain.report import html_report

    page, explanations = html_report(model, users=users[:1], title="Why this recommendation? (seqlens demo)")
    atomic.write_text(out / "explain.html", page)
    console.print(f"\nmodel saved to [bold]{out / 'model'}[/bold], report to [bold]{out / 'report.md'}[/bold] "
                  f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    console.print(f"\n[bold]why[/bold] (user {escape(users[0])}): {escape(explanations[0].narrative)}")
    console.print(f"explanation report: [bold]{out / 'explain.html'}[/bold]")


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SeqlensError(f"{option}: expected comma-separated integers, got {text!r}") from None


#: every hyper-parameter of the models `train` builds, from their declarations (one flag each)
MODEL_PARAMS = SASRec.schema.all_specs(*(cls.schema for cls in TRAINABLE.values()))


def _with_model_flags(command):
    """Give `command` one option per hyper-parameter in MODEL_PARAMS, collected into its `model_flags`
    argument (None where not given), so a parameter added to a model's config is a flag without more code."""
    signature = inspect.signature(command)
    flags = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_flag(spec), annotation=_flag_type(spec))
             for name, spec in MODEL_PARAMS.items()]  # fmt: skip

    @functools.wraps(command)
    def with_flags(**kwargs):
        values = {name: kwargs.pop(name) for name in MODEL_PARAMS}
        try:
            for name, spec in MODEL_PARAMS.items():
                if _is_int_list(spec) and values[name] is not None:
                    values[name] = _int_list(values[name], "--" + name.replace("_", "-"))
        except SeqlensError as e:
            _fail(str(e))
        return command(**kwargs, model_flags=values)

    kept = [p for p in signature.parameters.values() if p.name != "model_flags"]
    with_flags.__signature__ = signature.replace(parameters=kept + flags)  # type: ignore[attr-defined]
    return with_flags


def _is_int_list(spec: Spec) -> bool:
    return "list[int]" in str(spec.annotation)


def _flag_type(spec: Spec) -> type:
    if _is_int_list(spec):
        return str | None  # type: ignore[return-value]  # comma-separated on the command line
    base = next(t for t in (bool, int, float, str) if t is spec.annotation or t in typing.get_args(spec.annotation))
    return base | None  # type: ignore[return-value]


def _flag(spec: Spec):
    first = re.split(r"\.\s+(?=[A-Z])", spec.doc)[0].rstrip(".")
    choices = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
    hint = " Comma-separated, e.g. '-1' or '0,1'." if _is_int_list(spec) else ""
    text = f"{first}.{choices}{hint} SASRec's default: {spec.default!r}."
    if spec.annotation is bool:
        option = "--" + spec.name.replace("_", "-")
        return typer.Option(None, f"{option}/--no-{spec.name.replace('_', '-')}", help=text)
    return typer.Option(None, help=text)


@app.command()
@_with_model_flags
def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML run configuration."),
    data: str | None = typer.Option(None, help="Interaction file, or 'synthetic'."),
    format: str | None = typer.Option(None, help="auto, csv, tsv, parquet, movielens, sequences, synthetic."),
    timestamps: str | None = typer.Option(None, help="Aligned timestamp file for a sequence file."),
    out: str | None = typer.Option(None, help="Output model directory."),
    resume: Path | None = typer.Option(None, help="Checkpoint directory written by an interrupted run."),
    model_name: str | None = typer.Option(None, "--model", help=f"One of: {', '.join(TRAINABLE)} (default sasrec)."),
    *,
    model_flags: dict,
) -> None:
    """Train SASRec or GRU4Rec (leave-one-out split, early stopping on validation), evaluate on test, save.

    Every hyper-parameter of the model is also a flag (see `seqlens.SASRec` for what each does).
    """
    try:
        cfg = load_config(config, {"data": {"path": data, "format": format, "timestamps": timestamps},
                                   "model": model_flags, "run": {"out": out, "model": model_name}})  # fmt: skip
        log = _load_data(cfg)
        console.print(f"[bold]data[/bold]  {log}")
        split = _split(log, cfg.run.split)
        cls = TRAINABLE[cfg.run.model]
        params = cfg.model.model_dump(exclude_none=True)
        unused = sorted(set(params) - set(cls._param_names()))
        if unused:
            raise SeqlensError(f"{config or 'options'}: {cfg.run.model} has no parameter(s) {', '.join(unused)}")
        model = cls(**params)
        out_dir = Path(cfg.run.out)
        model.fit(
            split.train, valid=split.valid, checkpoint_dir=out_dir.with_name(out_dir.name + ".ckpt"), resume=resume
        )
    except TrainingInterrupted as e:
        _fail(f"interrupted; checkpoint saved, resume with --resume {e.checkpoint}")
    except SeqlensError as e:
        _fail(str(e))
    name = type(model).__name__
    results = {
        name: evaluate(model, split.test, split.test_history),
        "Popular": evaluate(Popular().fit(split.train), split.test, split.test_history),
    }
    console.print(_metrics_table(results, f"test metrics ({_protocol_line(results[name], cfg.run.split)})"))
    model.metrics_ = {"test": results[name].summary, "protocol": {**results[name].protocol, "split": cfg.run.split},
                      "popular_test": results["Popular"].summary}  # fmt: skip
    model.save(out_dir)
    console.print(f"model saved to [bold]{out_dir}[/bold]")


@app.command("evaluate")
def evaluate_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by train or save()."),
    data: str = typer.Argument(..., help="Interaction file (the model's data; split leave-one-out)."),
    format: str = typer.Option("auto", help="auto, csv, tsv, parquet, movielens, sequences, synthetic."),
    timestamps: str | None = typer.Option(None, help="Aligned timestamp file for a sequence file."),
    keep_seen: bool = typer.Option(False, help="Keep history items in the ranking (default: excluded)."),
    per_user: Path | None = typer.Option(None, help="Write per-user metrics (CSV or Parquet) here."),
    sampled: str | None = typer.Option(
        None, help="Rank against 100 sampled negatives (uniform or popularity) instead of all items; labelled SAMPLED."
    ),
) -> None:
    """Evaluate a saved model on the last interaction of each user in DATA, next to popularity."""
    try:
        model = load_model(model_dir)
        log = read_log(data, format, timestamps=timestamps)
        split = leave_one_out(log)
    except SeqlensError as e:
        _fail(str(e))
    options = dict(exclude_seen=not keep_seen, sampled=sampled)
    try:
        results = {
            type(model).__name__: evaluate(model, split.test, split.test_history, **options),
            "Popular": evaluate(Popular().fit(split.train), split.test, split.test_history, **options),
        }
    except SeqlensError as e:
        _fail(str(e))
    console.print(_metrics_table(results, f"test metrics ({_protocol_line(results['Popular'])})"))
    if per_user is not None:
        frame = results[type(model).__name__].per_user
        data_bytes = frame.to_parquet() if per_user.suffix == ".parquet" else frame.to_csv(index=False).encode()
        atomic.write_bytes(per_user, data_bytes)
        console.print(f"per-user metrics written to {per_user}")


@app.command()
def recommend(
    model_dir: Path = typer.Argument(..., help="Model directory written by train or save()."),
    user: str | None = typer.Option(None, help="A user seen in training."),
    items: str | None = typer.Option(None, help="Comma-separated item ids, oldest first (an ad-hoc history)."),
    k: int = typer.Option(10, "-k", "--k", help="How many items."),
    keep_seen: bool = typer.Option(False, help="Allow items already in the history."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    users: str | None = typer.Option(
        None, help="Batch: 'all' known users, or a file of user ids (one per line); needs --out."
    ),
    out: Path | None = typer.Option(
        None, help="Write the recommendations here (.parquet or .csv) instead of printing."
    ),
) -> None:
    """Top-k next items for a known user, an ad-hoc list of items, or many users at once (--users, --out)."""
    if sum(x is not None for x in (user, items, users)) != 1:
        _fail("give exactly one of --user U, --items a,b,c or --users all|FILE")
    if users is not None and out is None:
        _fail("--users writes a file: give --out recs.parquet (or .csv)")
    if out is not None and out.suffix not in (".parquet", ".csv"):
        _fail(f"--out {out}: use a .parquet or .csv file name")
    try:
        model = load_model(model_dir)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if users is not None:
                recs = model.recommend(users=_user_list(model, users), k=k, exclude_seen=not keep_seen)
            elif user is not None:
                recs = model.recommend(users=[user], k=k, exclude_seen=not keep_seen)
            else:
                history = [i.strip() for i in items.split(",") if i.strip()]
                recs = model.recommend(histories={"query": history}, k=k, exclude_seen=not keep_seen)
    except SeqlensError as e:
        _fail(str(e))
    for w in caught:
        _warn(str(w.message))
    recs["title"] = [model.item_titles_.get(i, "") for i in recs["item_id"]]
    if out is not None:
        data = recs.to_parquet(index=False) if out.suffix == ".parquet" else recs.to_csv(index=False).encode()
        atomic.write_bytes(out, data)
        errors.print(
            f"{recs['user_id'].nunique()} users, {len(recs)} recommendations written to {out}", highlight=False
        )
        return
    if as_json:
        print(json.dumps(recs.to_dict(orient="records")))
        return
    table = Table(title=f"top {k} for {'user ' + user if user else 'the given items'}")
    for col in ("rank", "item_id", "title", "score"):
        table.add_column(col, justify="right" if col in ("rank", "score") else "left")
    for row in recs.itertuples():
        table.add_row(str(row.rank), row.item_id, row.title, f"{row.score:.4f}")
    console.print(table)


def _user_list(model: Recommender, users: str) -> list[str]:
    """'all' known users, or the ids in a file (one per line, blank lines skipped)."""
    if users == "all":
        return [str(u) for u in model.user_ids_]
    path = Path(users)
    if not path.is_file():
        raise SeqlensError(f"--users {users}: not 'all' and no such file")
    listed = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not listed:
        raise SeqlensError(f"--users {users}: the file lists no user ids")
    return listed


BASELINES = {"popular": seqlens.Popular, "markov": seqlens.MarkovChain, "itemknn": seqlens.ItemKNN}


def _runs_to_evaluate(specs: list[str], split: Split) -> dict[str, list[Recommender]]:
    """`[label=]dir[,dir...]` (several dirs = seeds of one model, pooled) or a baseline name, fitted here."""
    runs: dict[str, list[Recommender]] = {}
    for spec in specs:
        label, _, paths = spec.rpartition("=")
        if paths.lower() in BASELINES:
            runs[label or paths.lower()] = [BASELINES[paths.lower()]().fit(split.train)]
            continue
        dirs = [p for p in paths.split(",") if p]
        runs[label or Path(dirs[0]).name] = [load_model(d) for d in dirs]
    return runs


def _beyond_tables(models: dict, results: dict, split: Split, keep_seen: bool) -> dict:
    """Beyond-accuracy measures of each model's top-10, and NDCG@10 by history length and by target popularity."""
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


@app.command("compare")
def compare_cmd(
    runs: list[str] = typer.Argument(
        ..., help="Model directories, 'label=dir1,dir2' to pool seeds, or a baseline: popular, markov, itemknn."
    ),
    data: str = typer.Option(..., help="Interaction file the models were trained on."),
    format: str = typer.Option("auto", help="auto, csv, tsv, parquet, movielens, sequences, synthetic."),
    timestamps: str | None = typer.Option(None, help="Aligned timestamp file for a sequence file."),
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
    from seqlens.eval.compare import compare
    from seqlens.eval.report import write_comparison

    try:
        if split_name not in ("leave_one_out", "temporal"):
            raise SeqlensError(f"--split {split_name!r}: choose leave_one_out or temporal")
        split = _split(read_log(data, format, timestamps=timestamps), split_name)
        models = _runs_to_evaluate(runs, split)
        results = {
            label: [evaluate(m, split.test, split.test_history, exclude_seen=not keep_seen) for m in seeds]
            for label, seeds in models.items()
        }
        table = compare(results, reference or next(iter(results)), [m.strip() for m in metrics.split(",")])
    except SeqlensError as e:
        _fail(str(e))
    protocol = _protocol_line(next(iter(results.values()))[0], split_name)
    for label in _trained_elsewhere(models, split):
        _warn(f"{label} was not trained on this split's training data: its test targets may be in its training data")
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


@app.command()
def calibrate(
    model_dir: Path = typer.Argument(..., help="Model directory of a SASRec or GRU4Rec model (scores are logits)."),
    data: str = typer.Argument(..., help="Interaction file the model was trained on (split leave-one-out)."),
    format: str = typer.Option("auto", help="auto, csv, tsv, parquet, movielens, sequences, synthetic."),
    timestamps: str | None = typer.Option(None, help="Aligned timestamp file for a sequence file."),
    out: Path | None = typer.Option(None, help="Directory for calibration.json and reliability.png."),
) -> None:
    """Expected calibration error of the top-1 probability, before and after temperature scaling.

    The temperature is fitted on the validation targets (lowest NLL) and applied to the test targets.
    """
    from seqlens.eval.calibration import reliability, top_one_probabilities
    from seqlens.eval.protocol import targets_with_histories
    from seqlens.eval.report import reliability_png

    try:
        model = load_model(model_dir)
        split = leave_one_out(read_log(data, format, timestamps=timestamps))
    except SeqlensError as e:
        _fail(str(e))

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
        _warn(
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


@app.command()
def serve(
    ctx: typer.Context,
    model_dir: Path = typer.Argument(..., help="Model directory written by train or save()."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes, each with one torch thread."),
    reload_token: str | None = typer.Option(
        None,
        envvar="SEQLENS_RELOAD_TOKEN",
        help="Enables POST /v1/admin/reload with this bearer token (prefer the environment variable or "
        "--reload-token-file: a flag is visible to every user in `ps`).",
    ),
    reload_token_file: Path | None = typer.Option(None, help="Read the reload token from this file."),
    log_level: str = typer.Option("warning", help="uvicorn log level (info logs every request)."),
) -> None:
    """HTTP service: recommendations with explanations, a web page at /, Prometheus metrics at /metrics."""
    from seqlens.serve.engine import Engine
    from seqlens.serve.runner import run

    source = ctx.get_parameter_source("reload_token")
    if source is not None and source.name == "COMMANDLINE":  # by name: typer may bring its own click
        _warn("--reload-token on the command line is visible in `ps`; use SEQLENS_RELOAD_TOKEN or --reload-token-file")
    try:
        if reload_token_file is not None:
            if not reload_token_file.is_file():
                raise SeqlensError(f"--reload-token-file {reload_token_file}: no such file")
            reload_token = reload_token_file.read_text().strip() or None
        Engine.load(model_dir)  # fail here, with the reason, rather than in every worker (includes a smoke test)
    except SeqlensError as e:
        _fail(str(e))
    console.print(f"serving [bold]{model_dir}[/bold] on http://{host}:{port}/ ({workers} worker(s))")
    try:
        run(model_dir, host, port, workers, reload_token, log_level)
    except OSError as e:  # e.g. the port is taken
        _fail(f"cannot listen on {host}:{port}: {e}")


def _deny_list(deny: str | None, deny_file: Path | None, deny_attribute: list[str], log: InteractionLog | None):
    """--deny a,b, --deny-file (one id per line) and --deny-attribute column=value into a DenyList."""
    from seqlens.explain import DenyList

    items = [i.strip() for i in (deny or "").split(",") if i.strip()]
    if deny_file is not None:
        if not deny_file.exists():
            raise SeqlensError(f"--deny-file {deny_file}: no such file")
        items += [line.strip() for line in deny_file.read_text().splitlines() if line.strip()]
    attributes: dict[str, list[str]] = {}
    for spec in deny_attribute:
        column, sep, value = spec.partition("=")
        if not sep or not column or not value:
            raise SeqlensError(f"--deny-attribute {spec!r}: expected column=value, e.g. genres=Horror")
        attributes.setdefault(column, []).append(value)
    if attributes and (log is None or log.items is None):
        raise SeqlensError("--deny-attribute needs item metadata: pass --data with a file that has item attributes")
    return DenyList.build(items, attributes, log.items if log is not None else None)


@app.command("explain")
def explain_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory of a SASRec model."),
    user: list[str] = typer.Option([], "--user", "-u", help="A user seen in training (repeat for several)."),
    items: str | None = typer.Option(None, help="Comma-separated item ids, oldest first (an ad-hoc history)."),
    item: str | None = typer.Option(None, help="Item to explain (default: the top recommendation)."),
    method: str | None = typer.Option(
        None,
        help=f"One of {', '.join(METHODS)} (default: {DEFAULT_METHOD}; signed methods cite only "
        "items that raised the score).",
    ),
    k: int = typer.Option(5, "-k", "--k", help="At most this many items cited in the narrative."),
    verb: str | None = typer.Option(None, help="Verb of the narrative, e.g. watched, bought."),
    deny: str | None = typer.Option(None, help="Comma-separated item ids never named in explanations."),
    deny_file: Path | None = typer.Option(None, help="File of item ids (one per line) never named."),
    deny_attribute: list[str] = typer.Option([], help="column=value of item metadata to hide, e.g. genres=Horror."),
    data: str | None = typer.Option(None, help="The model's interaction file: times and item attributes."),
    format: str = typer.Option("auto", help="auto, csv, tsv, parquet, movielens, sequences, synthetic."),
    timestamps: str | None = typer.Option(None, help="Aligned timestamp file for a sequence file."),
    out: Path | None = typer.Option(Path("explain.html"), help="HTML report to write."),
    no_report: bool = typer.Option(False, "--no-report", help="Only print the narratives."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanations as JSON."),
) -> None:
    """Explain recommendations: print each narrative and write a self-contained HTML report."""
    from seqlens.explain import DEFAULT_VERB, explain_batch
    from seqlens.explain.explanation import timestamps_from_log
    from seqlens.explain.report import html_report

    if bool(user) == (items is not None):
        _fail("give --user U (one or more) or --items a,b,c, not both")
    if item is not None and len(user) > 1:
        _fail("--item explains one item; give a single --user with it")
    try:
        model = load_model(model_dir)
        if not hasattr(model, "explain"):
            raise SeqlensError(f"{type(model).__name__} models cannot be explained; explanations need SASRec")
        log = read_log(data, format, timestamps=timestamps) if data else None
        deny_list = _deny_list(deny, deny_file, deny_attribute, log)
        users = user or None
        histories = None if users else {"query": [i.strip() for i in items.split(",") if i.strip()]}
        times = timestamps_from_log(model, log, users) if users and log is not None else None
        options = dict(
            method=method or DEFAULT_METHOD, k=k, timestamps=times, deny=deny_list, verb=verb or DEFAULT_VERB
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if out is not None and not no_report and not as_json:
                page, explanations = html_report(model, users, histories, **options)
                atomic.write_text(out, page)
            else:
                targets = [item] if item is not None else None
                explanations = explain_batch(model, users, histories, targets, **options)
    except SeqlensError as e:
        _fail(str(e))
    for w in caught:
        _warn(str(w.message))
    if as_json:
        print(json.dumps([e.to_dict() for e in explanations], default=str))
        return
    for e in explanations:
        console.print(f"[bold]{e.user}[/bold]  {e.narrative}", highlight=False)
    if out is not None and not no_report:
        console.print(f"report written to [bold]{out}[/bold]")


@app.command("faithfulness")
def faithfulness_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory of a SASRec model."),
    data: str = typer.Argument(..., help="Interaction file the model was trained on (split leave-one-out)."),
    format: str = typer.Option("auto", help="auto, csv, tsv, parquet, movielens, sequences, synthetic."),
    timestamps: str | None = typer.Option(None, help="Aligned timestamp file for a sequence file."),
    users: int = typer.Option(500, help="Test users sampled (among those with more than 5 history items)."),
    methods: str = typer.Option(",".join(METHODS), help="Comma-separated methods."),
    draws: int = typer.Option(10, help="Random deletions averaged per user and k."),
    seed: int = typer.Option(0, help="Seed of the user sample and the random deletions."),
    out: Path | None = typer.Option(None, help="Directory for faithfulness.md, .json and .png."),
) -> None:
    """How faithful each attribution method is: deletion and insertion curves, AOPC, rank agreement with exact
    occlusion, and how often the top item raises the score when removed or is simply the most recent one,
    against the recency and random baselines."""
    from seqlens.eval.protocol import targets_with_histories
    from seqlens.eval.report import frame_markdown
    from seqlens.explain.faithfulness import faithfulness
    from seqlens.explain.plots import faithfulness_curves

    try:
        model = load_model(model_dir)
        if not hasattr(model, "explain"):
            raise SeqlensError(f"{type(model).__name__} models cannot be explained; explanations need SASRec")
        split = leave_one_out(read_log(data, format, timestamps=timestamps))
        _, histories, _ = targets_with_histories(model, split.test, split.test_history)
        chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
        result = faithfulness(model, histories, chosen, n_users=users, draws=draws, seed=seed)
    except SeqlensError as e:
        _fail(str(e))
    shown = ["drop@3", "rank@3", "left_top10@3", "aopc", "insertion_area", "spearman", "top1_against", "top1_latest",
             "x_random@3", "x_recency@3", "of_occlusion@3"]  # fmt: skip
    shown = [c for c in shown if c in result.table.columns]
    table = Table(title=f"faithfulness on {result.protocol['n_users']} test users (score = logit of the top item)")
    table.add_column("method")
    for c in shown:
        table.add_column(c, justify="right")
    for name, row in result.table.iterrows():
        table.add_row(str(name), *(f"{row[c]:.3f}" for c in shown))
    console.print(table)
    if out is not None:
        protocol = "\n".join(f"- {k}: {v}" for k, v in result.protocol.items())
        atomic.write_text(out / "faithfulness.md", f"# Faithfulness of {model_dir}\n\n{protocol}\n\n"
                          + frame_markdown(result.table, "Deletion and insertion"))  # fmt: skip
        payload = {"protocol": result.protocol, "table": result.table.reset_index(names="method").to_dict("records")}
        atomic.write_text(out / "faithfulness.json", json.dumps(payload, indent=1))
        atomic.write_bytes(out / "faithfulness.png", faithfulness_curves(result, f"faithfulness of {model_dir}"))
        console.print(f"written to [bold]{out}[/bold] (faithfulness.md, .json, .png)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
