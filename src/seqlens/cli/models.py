"""Numbered model versions in a store: add, list, promote, rollback; `serve STORE` serves the promoted one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqlens.cli.common import console, reports_errors

Store = Annotated[Path, typer.Argument(help="Model store directory (created by the first `add`).")]

app = typer.Typer(
    help=__doc__,  # also what `seqlens --help` lists (read from the source)
    no_args_is_help=True,
    add_completion=False,
)


@app.command("add")
@reports_errors
def add(
    store: Store,
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by train or save().")],
    note: str = typer.Option("", help="A note kept with the version (what changed, the run it came from)."),
    promote: bool = typer.Option(False, help="Promote the new version at once."),
) -> None:
    """Copy a saved model into the store as its next version (it must load first)."""
    from seqlens.recommenders import ModelStore

    number = ModelStore(store, create=True).add(model_dir, note=note, promote=promote)
    console.print(f"added version {number}{' (promoted)' if promote else ''}")


@app.command("list")
@reports_errors
def list_versions(store: Store) -> None:
    """The store's versions; the promoted one is marked."""
    from seqlens.recommenders import ModelStore

    table = Table("version", "promoted", "added", "model", "config hash", "note")
    for v in ModelStore(store).versions():
        table.add_row(str(v.number), "*" if v.promoted else "", v.added, v.model, v.config_hash, v.note)
    console.print(table)


@app.command("promote")
@reports_errors
def promote(store: Store, version: Annotated[int, typer.Argument(help="The version to serve.")]) -> None:
    """Serve VERSION from now on (a running service switches on POST /v1/admin/reload)."""
    from seqlens.recommenders import ModelStore

    console.print(f"promoted version {ModelStore(store).promote(version)}")


@app.command("rollback")
@reports_errors
def rollback(store: Store) -> None:
    """Return to the version promoted before the current one (a running service: POST /v1/admin/rollback)."""
    from seqlens.recommenders import ModelStore

    current, previous = ModelStore(store).rollback()
    console.print(f"rolled back from version {current} to {previous}")
