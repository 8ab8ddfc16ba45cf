"""`seqlens serve`: the HTTP service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqlens.cli.common import console, fail, warn
from seqlens.errors import SeqlensError


def serve(
    ctx: typer.Context,
    model_dir: Annotated[
        Path, typer.Argument(help="Model directory written by train or save(), or a model store (`seqlens models`).")
    ],
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes, each with one torch thread."),
    reload_token: str | None = typer.Option(
        None,
        envvar="SEQLENS_RELOAD_TOKEN",
        help="Enables POST /v1/admin/reload (and /v1/admin/rollback for a model store) with this bearer token (prefer the environment variable or "
        "--reload-token-file: a flag is visible to every user in `ps`).",
    ),
    reload_token_file: Path | None = typer.Option(None, help="Read the reload token from this file."),
    log_level: str = typer.Option("warning", help="uvicorn log level (info logs every request)."),
    request_log: Path | None = typer.Option(
        None,
        help="Append a record of every recommend request to rotating JSON-lines files in this folder "
        "(for `seqlens monitor MODEL --requests DIR`).",
    ),
    request_log_history: bool = typer.Option(False, help="Also record each request's history item ids."),
) -> None:
    """HTTP service: recommendations with explanations, a web page at /, Prometheus metrics at /metrics."""
    from seqlens.serve.engine import Engine
    from seqlens.serve.runner import run

    source = ctx.get_parameter_source("reload_token")
    if source is not None and source.name == "COMMANDLINE":  # by name: typer may bring its own click
        warn("--reload-token on the command line is visible in `ps`; use SEQLENS_RELOAD_TOKEN or --reload-token-file")
    if reload_token_file is not None:
        if not reload_token_file.is_file():
            raise SeqlensError(f"--reload-token-file {reload_token_file}: no such file")
        reload_token = reload_token_file.read_text().strip() or None
    engine = Engine.load(model_dir)  # fail here, with the reason, rather than in every worker (includes a smoke test)
    version = f" version {engine.version}" if engine.version is not None else ""
    console.print(f"serving [bold]{model_dir}[/bold]{version} on http://{host}:{port}/ ({workers} worker(s))")
    try:
        run(model_dir, host, port, workers, reload_token, log_level, request_log, request_log_history)
    except OSError as e:  # e.g. the port is taken
        fail(f"cannot listen on {host}:{port}: {e}")
