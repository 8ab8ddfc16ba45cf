"""`seqlens serve` as a process under 256 file descriptors (issue 18's probe): 300 connections that stall in
their request head, then uploads that stall in their body plus a burst of requests. The service keeps
answering, closes the stalled connections after its timeouts, refuses what it cannot hold with a quick 503
+ Retry-After, and its log does not fill with EMFILE tracebacks (before: /healthz timed out and asyncio
logged about 118,000 tracebacks in 17 s)."""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.serve_load import stop_server

SEQLENS = Path(sys.executable).parent / "seqlens"
FDS = 256
HEAD_TIMEOUT, BODY_TIMEOUT = 2, 4  # seconds, short for the test (defaults: 10 and 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _few_descriptors() -> None:  # in the server's process, before exec: soft and hard limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, FDS))


def open_many(port: int, n: int, first: bytes, wave: int = 20, seconds: float = 10) -> list[socket.socket]:
    """`n` connections, each sending `first` as soon as it is connected, opened `wave` at a time every
    20 ms: a server short of descriptors keeps a short listen queue (its backlog is also how many
    connections asyncio accepts in one loop turn), and connections beyond it wait out SYN retries."""
    socks: list[socket.socket] = []
    sel = selectors.DefaultSelector()

    def send_when_connected(timeout: float) -> None:
        for key, _ in sel.select(timeout=timeout):
            try:
                key.fileobj.send(first)  # type: ignore[union-attr]
            except OSError:
                pass  # refused or reset: read as such by `outcomes`
            sel.unregister(key.fileobj)

    while len(socks) < n:
        for _ in range(min(wave, n - len(socks))):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE)
        send_when_connected(0.02)
    deadline = time.monotonic() + seconds
    while sel.get_map() and time.monotonic() < deadline:
        send_when_connected(0.2)
    sel.close()
    return socks


def still_open(sock: socket.socket) -> bool:
    """Connected, and the server has neither answered nor closed."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False  # an answer, or the end of the connection, is waiting


def outcomes(socks: list[socket.socket], seconds: float) -> tuple[dict[str, int], list[float]]:
    """How each connection ended within `seconds`, by the status line of what it got ("408", "503+retry",
    "reset", "closed" without an answer, "open" if still open), and when (seconds from now)."""
    ends: dict[str, int] = {}
    times: list[float] = []
    got: dict[socket.socket, bytes] = {s: b"" for s in socks}
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    start = time.monotonic()

    def end(s: socket.socket, what: str) -> None:
        ends[what] = ends.get(what, 0) + 1
        times.append(time.monotonic() - start)
        sel.unregister(s)
        s.close()

    while sel.get_map() and time.monotonic() - start < seconds:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
                if not got[s]:
                    end(s, "reset")
                    continue
            if chunk:
                got[s] += chunk
                continue
            head = got[s].split(b"\r\n\r\n")[0].lower()
            status = head.split(b" ")[1].decode() if head.startswith(b"http/1.1 ") else "closed"
            end(s, status + ("+retry" if b"\r\nretry-after: " in head else ""))
    for key in list(sel.get_map().values()):
        ends["open"] = ends.get("open", 0) + 1
        key.fileobj.close()  # type: ignore[union-attr]
    sel.close()
    return ends, times


@pytest.mark.fault
@pytest.mark.skipif(not SEQLENS.exists(), reason=f"{SEQLENS} not installed (pip install -e .)")
def test_stalled_clients_and_a_burst_do_not_exhaust_a_server_short_of_descriptors(tmp_path, model_dir):
    port, log = _free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SEQLENS_HEADER_TIMEOUT": str(HEAD_TIMEOUT), "SEQLENS_BODY_TIMEOUT": str(BODY_TIMEOUT)}
    env = {k: v for k, v in env.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "SEQLENS_GENERATION_FILE")}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(SEQLENS), "serve", str(model_dir), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, preexec_fn=_few_descriptors,
        )  # fmt: skip
    query = {"items": ["i3", "i4"], "k": 3}
    recommend = json.dumps(query).encode()
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)

        # 1. 300 connections that send half a request head and stall: more than the process could hold
        stalled = open_many(port, 300, b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Le")
        time.sleep(1.5)  # past the wait after which an idle connection yields its slot to a new one
        assert sum(map(still_open, stalled)) > 0  # the probes below run while stalled clients hold slots
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        assert httpx.post(f"{url}/v1/recommend", json=query, timeout=10).status_code == 200
        ends, _ = outcomes(stalled, HEAD_TIMEOUT + 10)
        assert set(ends) <= {"408", "503+retry", "reset"}, ends  # each closed: timed out, yielded, or refused
        assert ends.get("408", 0) > 0, ends

        # 2. uploads that stall in their body fill every slot (a request in progress never yields it), then
        # a burst: refused at once with 503 + Retry-After instead of queued
        head = (
            b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n{"
        )
        uploads = open_many(port, 150, head)
        time.sleep(0.5)
        request = (b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                   b"Content-Length: %d\r\n\r\n%s")  # fmt: skip
        burst = open_many(port, 100, request % (len(recommend), recommend))
        ends, times = outcomes(burst, 10)
        assert set(ends) <= {"503+retry", "200"} and ends.get("503+retry", 0) > 0, ends
        assert max(times) < 10
        ends, _ = outcomes(uploads, BODY_TIMEOUT + 10)
        assert set(ends) <= {"408", "503+retry", "reset"} and ends.get("408", 0) > 0, ends
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        stop_server(proc)
    text = log.read_text()
    assert "Traceback" not in text and "out of system resource" not in text, text[-3000:]
    assert len(text.splitlines()) < 20, text[-3000:]  # a summary line at most every 10 s, not one per connection
