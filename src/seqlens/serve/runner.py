"""Running the service under uvicorn with N worker processes (what `seqlens serve` calls).

Why not plain `uvicorn.run(..., workers=N)`: (1) for N > 1 uvicorn binds the listening socket with
protocol 0, and asyncio only sets TCP_NODELAY on sockets whose protocol is TCP, so every response of a
keep-alive connection waited out the client's delayed ACK (~40 ms instead of ~1 ms, measured). Here the
socket is bound with IPPROTO_TCP and TCP_NODELAY (inherited by accepted connections on Linux), then
handed to uvicorn's own worker supervisor. (2) The worker health-check timeout is raised (see `run`).
(3) Connections are uvicorn's h11 protocol with header and body timeouts and a connection cap below the
file-descriptor limit, which is lifted to the hard limit first (`seqlens.serve.protocol`).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess

from seqlens.serve.protocol import accept_backlog, process_limits, raise_fd_limit

APP = "seqlens.serve.app:app_from_env"
#: uvicorn's h11 protocol with timeouts and a connection cap; named, not passed, so workers import it
PROTOCOL = "seqlens.serve.protocol:BoundedH11Protocol"
HEALTHCHECK_SECONDS = 60


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


KEEP_ALIVE_SECONDS = 5
#: how long a shutdown waits for open requests (a stalled upload included) before closing them
GRACEFUL_SHUTDOWN_SECONDS = 10


def run(
    model_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    reload_token: str | None = None,
    log_level: str = "warning",
    request_log: Path | None = None,
    request_log_history: bool = False,
) -> None:
    """Serve `model_dir` until interrupted. Workers read their configuration from the environment."""
    os.environ["SEQLENS_MODEL_DIR"] = str(Path(model_dir).resolve())
    if request_log is not None:
        os.environ["SEQLENS_REQUEST_LOG"] = str(Path(request_log).resolve())
        os.environ["SEQLENS_REQUEST_LOG_HISTORY"] = "1" if request_log_history else "0"
    if reload_token:
        os.environ["SEQLENS_RELOAD_TOKEN"] = reload_token
    # A worker that misses uvicorn's health check is killed and restarted. Importing torch and loading a
    # model can hold the GIL for seconds on a busy machine, so the default 5 s timeout killed healthy
    # workers at start (seen under load): allow a minute.
    access_log = log_level in ("info", "debug", "trace")  # "info logs every request", as the CLI help says
    backlog = accept_backlog(raise_fd_limit())  # before the workers start: they inherit the limit
    process_limits(backlog)  # a bad SEQLENS_*_TIMEOUT fails here, with its name, not in a worker
    config = uvicorn.Config(
        APP, factory=True, host=host, port=port, workers=workers, log_level=log_level, access_log=access_log,
        timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
        # shed load instead of queueing it: connections past the cap are answered 503 + Retry-After when
        # made (the protocol), requests past the app's in-flight limit too; uvicorn's own limit stays off
        # (its bare 503 refused every request, old connections included); a stalled client is closed after
        # the header or body timeout and cannot hold a shutdown for longer than the grace period
        http=PROTOCOL, backlog=backlog, limit_concurrency=None, timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )  # fmt: skip
    if workers == 1:
        uvicorn.Server(config).run()
        return
    shared = Path(tempfile.mkdtemp(prefix="seqlens-serve-"))  # metrics files and the reload generation
    try:
        (shared / "metrics").mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared / "metrics")
        os.environ["SEQLENS_GENERATION_FILE"] = str(shared / "generation")
        sock = listening_socket(host, port)
        try:
            Multiprocess(config, sockets=[sock]).run()
        except KeyboardInterrupt:
            pass
        finally:
            sock.close()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
