"""What every command shares: the consoles, warnings and errors on stderr, metric tables, data loading.

Light to import (no torch, no pandas): `seqlens --help` and a command's own --help load only what they show.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seqlens.errors import SeqlensError

if TYPE_CHECKING:
    from seqlens.cli.config import Config
    from seqlens.data import InteractionLog, Split
    from seqlens.eval import EvalResult
    from seqlens.recommenders import Recommender

console = Console()


#: errors go to stderr, unwrapped: a message is read (and grepped) whole, whatever the terminal width
errors = Console(stderr=True, soft_wrap=True)


# option types shared by the commands (`format: Format = "auto"`): one help text each
Format = Annotated[str, typer.Option(help="auto, csv, tsv, parquet, movielens, sequences, synthetic.")]
Timestamps = Annotated[str | None, typer.Option(help="Aligned timestamp file for a sequence file.")]
ModelDir = Annotated[Path, typer.Argument(help="Model directory written by train or save().")]
TrainingData = Annotated[str, typer.Argument(help="Interaction file the model was trained on (split leave-one-out).")]

SHOWN = ("recall@1", "recall@10", "ndcg@10", "mrr@10", "recall@20", "ndcg@20")


def warn(message: str) -> None:
    errors.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)


def fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(2)


def load_data(cfg: Config) -> InteractionLog:
    from seqlens.data import load_dataset, read_log

    d = cfg.data
    if d.dataset is not None:
        log = load_dataset(d.dataset, d.root)
    else:
        context = getattr(cfg.model, "context", None) or ()  # the columns a model that reads context needs
        log = read_log(d.path, d.format, d.user, d.item, d.time, d.timestamps, d.titles, context)
    return log.kcore(d.kcore, d.kcore) if d.kcore else log


def read_for(
    model: Recommender, data: str | Path, format: str = "auto", timestamps: str | Path | None = None
) -> InteractionLog:
    """The log at `data` as `model` reads it: with the context columns a model that reads request context needs
    (each event's own is its request's)."""
    from seqlens.data import read_log

    return read_log(data, format, timestamps=timestamps, context=getattr(model, "context", None) or ())


def split_log(log: InteractionLog, how: str) -> Split:
    from seqlens.data import leave_one_out, temporal_split

    return leave_one_out(log) if how == "leave_one_out" else temporal_split(log)


def metrics_table(results: dict[str, EvalResult], title: str) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for m in SHOWN:
        table.add_column(m, justify="right")
    for name, r in results.items():
        table.add_row(name, *(f"{r.summary[m]:.4f}" for m in SHOWN))
    return table


def markdown_metrics(results: dict[str, EvalResult]) -> str:
    lines = ["| model | " + " | ".join(SHOWN) + " |", "|---|" + "---:|" * len(SHOWN)]
    lines += [f"| {n} | " + " | ".join(f"{r.summary[m]:.4f}" for m in SHOWN) + " |" for n, r in results.items()]
    return "\n".join(lines)


def print_recommendations(model: Recommender, users: list[str], k: int) -> str:
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


def protocol_line(r: EvalResult, split: str = "leave_one_out") -> str:
    p = r.protocol
    small = f" (a SMALL test set: below {SMALL_TEST} users, differences are noisy)" if p["n_users"] < SMALL_TEST else ""
    return (
        f"{split.replace('_', '-')} test targets of {p['n_users']} users{small}, {p['ranking']} over "
        f"{p['n_items']} items, seen items {'excluded' if p['exclude_seen'] else 'kept'}, ties {p['ties']}"
    )


def int_list(text: str, option: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SeqlensError(f"{option}: expected comma-separated integers, got {text!r}") from None


def reports_errors(command):
    """Make a SeqlensError raised anywhere in `command` a one-line error on stderr with exit status 2 (the one
    place commands turn library errors into CLI errors)."""

    @functools.wraps(command)
    def reporting(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SeqlensError as e:
            fail(str(e))

    return reporting
