"""`seqlens add-items`: new items for a fitted feature model, ranked by their attributes without training again."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from seqlens.cli.common import ModelDir, console, fail, warn


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def add_items(
    model_dir: ModelDir,
    items: Path = typer.Argument(..., help="Item table: CSV, TSV, Parquet, JSON, item2attributes.json, movies.dat."),
    out: Path = typer.Option(..., help="Directory for the updated model (may be MODEL_DIR itself)."),
    item: str = typer.Option("item_id", help="The table's item id column."),
    categorical: str = typer.Option("", help="Comma-separated one-value columns (e.g. brand)."),
    multi: str = typer.Option("", help="Comma-separated multi-valued columns (e.g. category; values split at |)."),
    numeric: str = typer.Option("", help="Comma-separated numeric columns, cut at the bands of training."),
) -> None:
    """Add the table's items the model does not know as cold items; values training never saw are left out."""
    from seqlens.data import read_items
    from seqlens.recommenders import SASRec, load_model

    model = load_model(model_dir)
    if not isinstance(model, SASRec) or model.features is None:
        fail(f"{model_dir}: not a model that reads item attributes (train SASRec with --features)")
    bands = model.item_codes_.bands
    numbers = _columns(numeric)
    table = read_items(items, item=item, categorical=_columns(categorical), multi=_columns(multi), numeric=numbers,
                       edges={c: bands[c] for c in numbers if c in bands})  # fmt: skip
    before = model.n_items_
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.add_items(table)
    for w in caught:
        warn(str(w.message))
    model.save(out)
    console.print(f"added {model.n_items_ - before} items ({model.n_items_} in all); the model is in {out}")
