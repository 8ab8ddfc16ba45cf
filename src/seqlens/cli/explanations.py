"""`seqlens explain` and `seqlens faithfulness`: why a recommendation, and how far to trust the answer.

The library is imported inside the commands (the method names their options list come from the torch-free
`explain/methods.py`), so their --help loads neither torch nor pandas.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from seqlens import atomic
from seqlens.cli.common import (
    Format,
    Timestamps,
    TrainingData,
    console,
    fail,
    read_for,
    warn,
)
from seqlens.errors import SeqlensError
from seqlens.explain.methods import DEFAULT_METHOD, METHODS

if TYPE_CHECKING:
    from seqlens.data import InteractionLog


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


def explain_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Model directory of a SASRec model.")],
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
    format: Format = "auto",
    timestamps: Timestamps = None,
    out: Path | None = typer.Option(Path("explain.html"), help="HTML report to write."),
    no_report: bool = typer.Option(False, "--no-report", help="Only print the narratives."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanations as JSON."),
) -> None:
    """Explain recommendations: print each narrative and write a self-contained HTML report."""
    from seqlens.explain import DEFAULT_VERB, explain_batch
    from seqlens.explain.explanation import timestamps_from_log
    from seqlens.explain.report import html_report
    from seqlens.recommenders import SASRec, load_model

    if bool(user) == (items is not None):
        fail("give --user U (one or more) or --items a,b,c, not both")
    if item is not None and len(user) > 1:
        fail("--item explains one item; give a single --user with it")
    model = load_model(model_dir)
    if not isinstance(model, SASRec):
        raise SeqlensError(f"{type(model).__name__} models cannot be explained; explanations need SASRec")
    log = read_for(model, data, format, timestamps) if data else None
    deny_list = _deny_list(deny, deny_file, deny_attribute, log)
    users = user or None
    histories = None if users else {"query": [i.strip() for i in (items or "").split(",") if i.strip()]}
    times = timestamps_from_log(model, log, users) if users and log is not None else None
    chosen, verb = method or DEFAULT_METHOD, verb or DEFAULT_VERB
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if out is not None and not no_report and not as_json:
            page, explanations = html_report(
                model, users, histories, method=chosen, k=k, timestamps=times, deny=deny_list, verb=verb
            )
            atomic.write_text(out, page)
        else:
            targets = [item] if item is not None else None
            explanations = explain_batch(
                model, users, histories, targets, method=chosen, k=k, timestamps=times, deny=deny_list, verb=verb
            )
    for w in caught:
        warn(str(w.message))
    if as_json:
        print(json.dumps([e.to_dict() for e in explanations], default=str))
        return
    for e in explanations:
        console.print(f"[bold]{e.user}[/bold]  {e.narrative}", highlight=False)
    if out is not None and not no_report:
        console.print(f"report written to [bold]{out}[/bold]")


def faithfulness_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Model directory of a SASRec model.")],
    data: TrainingData,
    format: Format = "auto",
    timestamps: Timestamps = None,
    users: int = typer.Option(500, help="Test users sampled (among those with more than 5 history items)."),
    methods: str = typer.Option(",".join(METHODS), help="Comma-separated methods."),
    draws: int = typer.Option(10, help="Random deletions averaged per user and k."),
    seed: int = typer.Option(0, help="Seed of the user sample and the random deletions."),
    out: Path | None = typer.Option(None, help="Directory for faithfulness.md, .json and .png."),
) -> None:
    """How faithful each attribution method is: deletion and insertion curves, AOPC, rank agreement with exact
    occlusion, and how often the top item raises the score when removed or is simply the most recent one,
    against the recency and random baselines."""
    from seqlens.data import leave_one_out
    from seqlens.eval.protocol import targets_with_histories
    from seqlens.eval.report import frame_markdown
    from seqlens.explain.faithfulness import faithfulness
    from seqlens.explain.plots import faithfulness_curves
    from seqlens.recommenders import SASRec, load_model

    model = load_model(model_dir)
    if not isinstance(model, SASRec):
        raise SeqlensError(f"{type(model).__name__} models cannot be explained; explanations need SASRec")
    split = leave_one_out(read_for(model, data, format, timestamps))
    _, histories, _ = targets_with_histories(model, split.test, split.test_history)
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    result = faithfulness(model, histories, chosen, n_users=users, draws=draws, seed=seed)
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
