"""`seqlens serve` as a process: a bad directory fails fast; two workers share metrics and follow a reload."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from uvicorn.importer import import_from_string

from benchmarks.serve_load import stop_server
from seqlens.cli.main import app
from seqlens.errors import SeqlensError
from seqlens.serve.protocol import BoundedH11Protocol, accept_backlog, fd_limit, process_limits

from .conftest import TOKEN

SEQLENS = Path(sys.executable).parent / "seqlens"


def test_serve_refuses_a_directory_that_is_not_a_model(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "not a model directory" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"seqlens serve exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("seqlens serve did not become healthy")


@pytest.mark.skipif(not SEQLENS.exists(), reason=f"{SEQLENS} not installed (pip install -e .)")
def test_two_workers_share_metrics_and_all_follow_a_reload(tmp_path, model_dir, serve_log):
    import seqlens

    from .conftest import TINY

    path = tmp_path / "model"
    shutil.copytree(model_dir, path)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "SEQLENS_GENERATION_FILE")}
    proc = subprocess.Popen(
        [str(SEQLENS), "serve", str(path), "--port", str(port), "--workers", "2", "--reload-token", TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_healthy(url, proc)
        old = httpx.get(f"{url}/v1/model").json()["config_hash"]
        n = 12
        for _ in range(n):  # a new connection each time, so both workers get some
            assert httpx.post(f"{url}/v1/recommend", json={"items": ["i3", "i4"], "k": 3}).status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
        counted = re.search(
            r'seqlens_http_requests_total\{endpoint="/v1/recommend",method="POST",status="200"\} (\S+)', metrics
        )
        assert counted and float(counted.group(1)) == n  # summed over both workers' files

        seqlens.SASRec(**{**TINY, "dim": 8, "seed": 3, "epochs": 1}).fit(serve_log).save(path)
        r = httpx.post(f"{url}/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert r.status_code == 200, r.text
        new = r.json()["model"]["config_hash"]
        assert new != old
        # the other worker reloads in the background on its next request; soon every answer is the new model
        deadline, streak = time.monotonic() + 60, 0
        while streak < 10 and time.monotonic() < deadline:
            streak = streak + 1 if httpx.get(f"{url}/v1/model").json()["config_hash"] == new else 0
            time.sleep(0.05)
        assert streak >= 10, "a worker kept serving the old model"
    finally:
        stop_server(proc)


def test_the_workers_socket_disables_nagle_on_accepted_connections():
    # without TCP_NODELAY each keep-alive response waited ~40 ms for the client's delayed ACK
    from seqlens.serve.runner import listening_socket

    with listening_socket("127.0.0.1", 0) as server:
        assert server.proto == socket.IPPROTO_TCP
        server.listen(1)
        with socket.create_connection(server.getsockname()) as client:
            conn, _ = server.accept()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                assert client.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM


@pytest.mark.fault
def test_a_reload_token_given_as_a_flag_is_warned_about(tmp_path):
    """A flag shows in `ps` to every user; the environment or a file does not. (The model dir is bad, so the
    command stops right after its checks.)"""
    flagged = CliRunner().invoke(app, ["serve", str(tmp_path / "missing"), "--reload-token", "t" * 20])
    assert "visible in `ps`" in flagged.stderr
    quiet = CliRunner().invoke(app, ["serve", str(tmp_path / "missing")], env={"SEQLENS_RELOAD_TOKEN": "t" * 20})
    assert "visible in `ps`" not in quiet.stderr
    missing = CliRunner().invoke(app, ["serve", str(tmp_path / "missing"), "--reload-token-file", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "--reload-token-file" in missing.stderr


@pytest.mark.fault
def test_info_log_level_turns_the_access_log_on(monkeypatch, tmp_path):
    from seqlens.serve import runner

    configs = []
    monkeypatch.setattr(
        runner.uvicorn, "Server", lambda config: configs.append(config) or type("S", (), {"run": lambda self: None})()
    )
    runner.run(tmp_path, log_level="info")
    runner.run(tmp_path, log_level="warning")
    assert [c.access_log for c in configs] == [True, False]


@pytest.mark.fault
def test_workers_shed_load_and_bound_shutdown(monkeypatch, tmp_path):
    from seqlens.serve import runner

    configs = []
    monkeypatch.setattr(
        runner.uvicorn, "Server", lambda config: configs.append(config) or type("S", (), {"run": lambda self: None})()
    )
    runner.run(tmp_path)
    # connections past the cap: 503 + Retry-After when made (the protocol); uvicorn's own limit, whose bare
    # 503 refused every request on every connection once reached, stays off
    assert configs[0].http == runner.PROTOCOL and configs[0].limit_concurrency is None
    assert import_from_string(configs[0].http) is BoundedH11Protocol  # the name imports (as workers do)
    assert configs[0].backlog == accept_backlog(fd_limit())
    assert configs[0].timeout_graceful_shutdown == runner.GRACEFUL_SHUTDOWN_SECONDS


@pytest.mark.fault
def test_serve_lifts_the_descriptor_limit_and_refuses_bad_timeouts(monkeypatch, tmp_path):
    import resource

    from seqlens.serve import runner

    monkeypatch.setattr(runner.uvicorn, "Server", lambda config: type("S", (), {"run": lambda self: None})())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        runner.run(tmp_path)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == (hard if hard != resource.RLIM_INFINITY else 1 << 16)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    process_limits.cache_clear()
    monkeypatch.setenv("SEQLENS_HEADER_TIMEOUT", "soon")
    with pytest.raises(SeqlensError, match="SEQLENS_HEADER_TIMEOUT must be a positive number, got 'soon'"):
        runner.run(tmp_path)
    process_limits.cache_clear()
