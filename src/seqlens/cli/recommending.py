"""`seqlens recommend`: top-k for one user, an ad-hoc history, or many users into a file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from seqlens import atomic
from seqlens.cli.common import (
    ModelDir,
    console,
    errors,
    fail,
    warn,
)
from seqlens.errors import SeqlensError

if TYPE_CHECKING:
    from seqlens.recommenders import Recommender


def recommend(
    model_dir: ModelDir,
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
    context: str | None = typer.Option(
        None, help="The request's context, for a model that reads it: comma-separated column=value (device=mobile)."
    ),
    attributes: str | None = typer.Option(
        None, help="The user's attributes with --items, for a model that reads them: column=value (gender=F,age=25)."
    ),
) -> None:
    """Top-k next items for a known user, an ad-hoc list of items, or many users at once (--users, --out)."""
    from seqlens.recommenders import load_model

    if sum(x is not None for x in (user, items, users)) != 1:
        fail("give exactly one of --user U, --items a,b,c or --users all|FILE")
    if users is not None and out is None:
        fail("--users writes a file: give --out recs.parquet (or .csv)")
    if out is not None and out.suffix not in (".parquet", ".csv"):
        fail(f"--out {out}: use a .parquet or .csv file name")
    if attributes is not None and items is None:
        fail("--attributes go with --items (a known user's are stored with the model)")
    if context is not None and users is not None:
        fail("--context is one request's: give it with --user or --items")
    asked, given = key_values("--context", context), key_values("--attributes", attributes)
    model = load_model(model_dir)
    if users is not None and out is not None:
        _write_in_chunks(model, _user_list(model, users), k, not keep_seen, out)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if user is not None:
            recs = model.recommend(
                users=[user], k=k, exclude_seen=not keep_seen, context=None if asked is None else {user: asked}
            )
        else:
            history = [i.strip() for i in (items or "").split(",") if i.strip()]
            recs = model.recommend(
                histories={"query": history}, k=k, exclude_seen=not keep_seen,
                user_attributes=None if given is None else {"query": given},
                context=None if asked is None else {"query": asked},
            )  # fmt: skip
    for w in caught:
        warn(str(w.message))
    recs["title"] = [model.item_titles_.get(i, "") for i in recs["item_id"]]
    if out is not None:
        data = recs.to_parquet(index=False) if out.suffix == ".parquet" else recs.to_csv(index=False).encode()
        atomic.write_bytes(out, data)
        errors.print(f"{len(recs)} recommendations written to {out}", highlight=False)
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


def key_values(option: str, text: str | None) -> dict[str, str] | None:
    """`column=value,column=value` as a dict (None for None); a pair without `=` fails naming the option."""
    if text is None:
        return None
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in pairs if "=" not in p or not p.split("=", 1)[0].strip()]
    if bad or not pairs:
        fail(f"{option} {text!r}: give comma-separated column=value pairs (device=mobile)")
    return {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in pairs)}


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


#: users per chunk of a batch run: the rows of one chunk are all that is held before being written
CHUNK_USERS = 20_000


def _write_in_chunks(model: Recommender, users: list[str], k: int, exclude_seen: bool, out: Path) -> None:
    """Recommend for `users` a chunk at a time, appending each chunk's rows to `out` (Parquet row groups or CSV
    lines) through a temporary file that replaces `out` only when every chunk is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    with atomic.file(out) as f:
        writer = None
        for lo in range(0, len(users), CHUNK_USERS):
            recs = model.recommend(users=users[lo : lo + CHUNK_USERS], k=k, exclude_seen=exclude_seen)
            recs["title"] = [model.item_titles_.get(i, "") for i in recs["item_id"]]
            rows += len(recs)
            if out.suffix == ".csv":
                f.write(recs.to_csv(index=False, header=lo == 0).encode())
                continue
            table = pa.Table.from_pandas(recs, preserve_index=False)
            writer = writer or pq.ParquetWriter(f, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
    errors.print(f"{len(users)} users, {rows} recommendations written to {out}", highlight=False)
