"""`seqlens demo` and `seqlens train` (one flag per hyper-parameter, from the models' declarations).

Light to import: the flags come from the torch-free declarations (`recommenders/registry.py`), and the library
is imported inside the commands, so `seqlens train --help` loads neither torch nor pandas.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
import typing
from pathlib import Path

import typer
from rich.markup import escape

import seqlens
from seqlens import atomic
from seqlens.cli.common import (
    Timestamps,
    console,
    fail,
    int_list,
    load_data,
    markdown_metrics,
    metrics_table,
    print_recommendations,
    protocol_line,
    split_log,
)
from seqlens.cli.config import MODEL_PARAMS, TRAINABLE, load_config
from seqlens.data.datasets import DATASETS
from seqlens.errors import SeqlensError
from seqlens.params import Spec


def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Directory for the model and report."),
    epochs: int = typer.Option(40, help="Training epochs (early stopping may end sooner)."),
    seed: int = typer.Option(0, help="Seed for data generation and training."),
) -> None:
    """Train SASRec on the built-in synthetic data, compare with popularity, recommend, and explain one
    recommendation (narrative printed, HTML report saved)."""
    from seqlens.data import leave_one_out
    from seqlens.eval import evaluate
    from seqlens.explain.report import html_report
    from seqlens.recommenders import Popular, SASRec

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
    console.print(metrics_table(results, "test metrics (full ranking, seen items excluded)"))
    users = list(model.user_ids_[:3])
    recs_md = print_recommendations(model, users, k=5)
    model.metrics_ = {name: r.summary for name, r in results.items()}
    model.save(out / "model")
    report = (
        f"# seqlens demo\n\nData: {log}\n\nProtocol: {protocol_line(results['SASRec'])}.\n\n"
        f"{markdown_metrics(results)}\n\nBest validation epoch: "
        f"{max(model.history_, key=lambda r: r['ndcg@10'])['epoch']} of {len(model.history_)}.\n\n"
        f"## Top-5 recommendations\n{recs_md}\n"
    )
    atomic.write_text(out / "report.md", report)
    page, explanations = html_report(model, users=users[:1], title="Why this recommendation? (seqlens demo)")
    atomic.write_text(out / "explain.html", page)
    console.print(f"\nmodel saved to [bold]{out / 'model'}[/bold], report to [bold]{out / 'report.md'}[/bold] "
                  f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    console.print(f"\n[bold]why[/bold] (user {escape(users[0])}): {escape(explanations[0].narrative)}")
    console.print(f"explanation report: [bold]{out / 'explain.html'}[/bold]")


def _with_model_flags(command):
    """Give `command` one option per hyper-parameter in MODEL_PARAMS, collected into its `model_flags`
    argument (None where not given), so a parameter added to a model's config is a flag without more code."""
    signature = inspect.signature(command)
    flags = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_flag(spec), annotation=_flag_type(spec))
             for name, spec in MODEL_PARAMS.items()]  # fmt: skip

    @functools.wraps(command)
    def with_flags(**kwargs):
        values = {name: kwargs.pop(name) for name in MODEL_PARAMS}
        for name, spec in MODEL_PARAMS.items():
            if _is_list(spec) and values[name] is not None:
                option = "--" + name.replace("_", "-")
                values[name] = int_list(values[name], option) if _is_int_list(spec) else _str_list(values[name])
        return command(**kwargs, model_flags=values)

    kept = [p for p in signature.parameters.values() if p.name != "model_flags"]
    with_flags.__signature__ = signature.replace(parameters=kept + flags)  # type: ignore[attr-defined]
    return with_flags


def _is_int_list(spec: Spec) -> bool:
    return "list[int]" in str(spec.annotation)


def _is_list(spec: Spec) -> bool:
    return "list[" in str(spec.annotation)


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _flag_type(spec: Spec) -> type:
    if _is_list(spec):
        return str | None  # type: ignore[return-value]  # comma-separated on the command line
    base = next(t for t in (bool, int, float, str) if t is spec.annotation or t in typing.get_args(spec.annotation))
    return base | None  # type: ignore[return-value]


def _flag(spec: Spec):
    first = re.split(r"\.\s+(?=[A-Z])", spec.doc)[0].rstrip(".")
    choices = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
    hint = (
        " Comma-separated, e.g. '-1' or '0,1'." if _is_int_list(spec) else " Comma-separated." if _is_list(spec) else ""
    )
    text = f"{first}.{choices}{hint} SASRec's default: {spec.default!r}."
    if spec.annotation is bool:
        option = "--" + spec.name.replace("_", "-")
        return typer.Option(None, f"{option}/--no-{spec.name.replace('_', '-')}", help=text)
    return typer.Option(None, help=text)


@_with_model_flags
def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML run configuration."),
    data: str | None = typer.Option(None, help="Interaction file, or 'synthetic'."),
    dataset: str | None = typer.Option(
        None, help=f"Instead of --data, a known dataset read from under --data-root: {', '.join(DATASETS)}."
    ),
    data_root: str | None = typer.Option(None, help="Folder holding the datasets (default: $SEQLENS_DATA)."),
    format: str | None = typer.Option(None, help="auto, csv, tsv, parquet, movielens, sequences, synthetic."),
    timestamps: Timestamps = None,
    out: str | None = typer.Option(None, help="Output model directory."),
    resume: Path | None = typer.Option(None, help="Checkpoint directory written by an interrupted run."),
    model_name: str | None = typer.Option(None, "--model", help=f"One of: {', '.join(TRAINABLE)} (default sasrec)."),
    nproc: int = typer.Option(
        1, min=1, help="Training processes on this machine (DistributedDataParallel; torchrun for several machines)."
    ),
    *,
    model_flags: dict,
) -> None:
    """Train SASRec, STOSA or GRU4Rec (leave-one-out split, early stopping on validation), evaluate on test, save.

    Every hyper-parameter of the model is also a flag (see `seqlens.SASRec` for what each does). With
    `--nproc N` (or under torchrun), N processes share each batch; rank 0 evaluates and saves.
    """
    from seqlens.train import distributed

    options = {"data": {"path": data, "format": format, "timestamps": timestamps, "dataset": dataset, "root": data_root},
               "model": model_flags, "run": {"out": out, "model": model_name}}  # fmt: skip
    if not distributed.join_from_env() and nproc > 1:
        _launch(nproc, config, options, resume)
        return
    try:
        _train(config, options, resume)
    finally:
        distributed.leave()


def _launch(nproc: int, config: Path | None, options: dict, resume: Path | None) -> None:
    """Start `nproc` training processes on this machine, each running `_train` as one rank of a gloo/NCCL group
    (the environment torchrun would set; the threads of this machine's cores shared between them)."""
    import os
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:  # a free port for the group's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = max(1, (os.cpu_count() or 1) // nproc)
    try:
        mp.start_processes(_rank, (nproc, port, threads, config, options, resume), nprocs=nproc, start_method="spawn")
    except mp.ProcessExitedException as e:
        fail(f"training process {e.error_index} of {nproc} exited with status {e.exit_code}")
    except mp.ProcessRaisedException as e:
        fail(f"a training process failed: {str(e).strip().splitlines()[-1]}")


def _rank(local_rank: int, nproc: int, port: int, threads: int, config: Path | None, options: dict, resume) -> None:
    import os

    import torch

    from seqlens.train import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(nproc), RANK=str(local_rank),
                      LOCAL_RANK=str(local_rank))  # fmt: skip
    torch.set_num_threads(threads)
    distributed.join_from_env()
    try:
        _train(config, options, resume)
    finally:
        distributed.leave()


def _train(config: Path | None, options: dict, resume: Path | None) -> None:
    """The training run of `seqlens train`, in this process (one rank of a group, or the only process)."""
    from seqlens.eval import evaluate
    from seqlens.recommenders import Popular
    from seqlens.recommenders.registry import model_class
    from seqlens.train import TrainingInterrupted, distributed

    main = distributed.is_main()
    try:
        cfg = load_config(config, options)
        log = load_data(cfg)
        if main:
            console.print(f"[bold]data[/bold]  {log}")
        split = split_log(log, cfg.run.split)
        cls = model_class(TRAINABLE[cfg.run.model])
        given: dict[str, object] = dict(cfg.model)
        params = {k: v for k, v in given.items() if v is not None}
        unused = sorted(set(params) - set(cls._param_names()))
        if unused:
            raise SeqlensError(f"{config or 'options'}: {cfg.run.model} has no parameter(s) {', '.join(unused)}")
        model = cls(**params)
        out_dir = Path(cfg.run.out)
        model.fit(
            split.train, valid=split.valid, checkpoint_dir=out_dir.with_name(out_dir.name + ".ckpt"), resume=resume
        )
    except TrainingInterrupted as e:
        fail(f"interrupted; checkpoint saved, resume with --resume {e.checkpoint}" if main else "interrupted")
    if not main:  # rank 0 evaluates and writes
        return
    model.save(out_dir)  # before the test evaluation: interrupting that must not lose the trained model
    name = type(model).__name__
    try:
        results = {
            name: evaluate(model, split.test, split.test_history),
            "Popular": evaluate(Popular().fit(split.train), split.test, split.test_history),
        }
    except KeyboardInterrupt:
        fail(f"interrupted during the test evaluation; the trained model is saved in {out_dir} (without test metrics: "
             f"`seqlens evaluate {out_dir} DATA` computes them)")  # fmt: skip
    console.print(metrics_table(results, f"test metrics ({protocol_line(results[name], cfg.run.split)})"))
    model.metrics_ = {"test": results[name].summary, "protocol": {**results[name].protocol, "split": cfg.run.split},
                      "popular_test": results["Popular"].summary}  # fmt: skip
    model.save(out_dir)  # again, with the test metrics
    console.print(f"model saved to [bold]{out_dir}[/bold]")
