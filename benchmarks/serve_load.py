"""Load benchmark of `seqlens serve`: latency one request at a time, then throughput under concurrency.

Starts the server on loopback (a free port), then for each mode (without / with explanations):
0. warm-up: `--warmup` seconds of unmeasured load per mode;
1. sequential: `--sequential` requests one after another on one keep-alive connection -> p50/p95/p99;
2. concurrent: `--concurrency` keep-alive connections, each sending its next request as soon as the last
   is answered, for `--duration` seconds -> requests/s, p50/p95/p99, errors.
Both also report the server's CPU time per request and its own mean latency (from /metrics): on a shared
machine these say what the server costs, apart from how long it waited for a core.
Requests are `POST /v1/recommend {"user_id": <random known user>, "k": 10}` (stored histories, truncated
to the model's max_len). Server memory is the resident set of the server's processes (all workers),
read from /proc. The client is a minimal asyncio HTTP/1.1 client so it takes little of the CPU it
shares with the server. Every loop is bounded in count and time, and only 127.0.0.1 is contacted.

Mode `reload` is the concurrent load of `plain` while `POST /v1/admin/reload` swaps the model every
`--reload-every` seconds: failed requests, latency and memory while models are swapped under load.

Mode `bad-reload` serves a copy of the model and, under the same load, replaces that copy in turn with a
model whose weights are NaN, one whose config.json asks for max_len 8,000,000 and one asking for dim
2,000,000 (memory bombs), and the good model again, reloading after each: every bad reload must answer 409
quickly, the old model must keep serving (no failed request) and memory must stay bounded.

Mode `rollback` serves a model store holding the model twice (versions 1 and 2, 2 promoted) and, under the same
load, alternates `POST /v1/admin/rollback` (to version 1) with promoting version 2 again and
`POST /v1/admin/reload`, every `--reload-every` seconds: no request may fail during a rollback.

Mode `request-log` starts three more servers, one writing the request log (`--request-log`) and two plain ones
(the second a control, for the noise floor), warms them alike and measures recommend latency one request at a
time on each, in rounds: the log's cost as p50 and p99 ratios in one run, next to the control's.

Mode `stalled` is the concurrent load of `plain` while `--stalled` connections send half a request head and
stall (each one the server closes is opened again a quarter second later), with `/healthz` asked on a new
connection every half second: requests served, failures, latency, how the stalled connections ended and
the most descriptors a server process held. Mode `burst` opens `--burst` connections at once, each sending
one request: how many got 200 or 503 (with Retry-After?) and how fast. `--fd-limit N` starts the server
with at most N open files (soft and hard limit), as issue 18's probe did.

Usage: python -m benchmarks.serve_load runs/serve/ml-1m [--workers 2] [--duration 60] [--concurrency 16]
Writes benchmarks/results/serve_load.json (the server's own log goes to the temp folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from seqlens.recommenders import ModelStore

RESULTS = Path(__file__).resolve().parent / "results"
SEQLENS = Path(sys.executable).parent / "seqlens"


class Connection:
    """One keep-alive HTTP/1.1 connection; `post` returns (status, body)."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def server_pids(root: int) -> list[int]:
    """Process `root` and its children (the workers), from /proc."""
    try:
        return [root, *(int(p) for p in Path(f"/proc/{root}/task/{root}/children").read_text().split())]
    except OSError:
        return [root]


def rss_each(root: int) -> dict[int, float]:
    """Resident memory in MiB of process `root` and of each of its children, by pid."""
    pids = server_pids(root)
    out = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        out[pid] = round(int(fields.get("VmRSS", "0 kB").split()[0]) / 1024, 1)
    return out


def rss_mib(root: int) -> tuple[float, float]:
    """(current, peak) resident memory in MiB of process `root` and its children (the workers)."""
    pids, current, peak = server_pids(root), 0.0, 0.0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        current += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        peak += int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
    return round(current, 1), round(peak, 1)


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by process `root` and its children (the workers)."""
    pids = server_pids(root)
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def server_side(port: int) -> dict:
    """Server-side totals from /metrics: recommend latency sum/count and batch sizes."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()

    def total(name: str, **labels) -> float:
        out = 0.0
        for line in text.splitlines():
            m = re.match(rf"{name}(\{{[^}}]*\}})? (\S+)$", line)
            if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
                out += float(m.group(2))
        return out

    return {
        "latency_sum": total("seqlens_http_request_duration_seconds_sum", endpoint="/v1/recommend"),
        "latency_count": total("seqlens_http_request_duration_seconds_count", endpoint="/v1/recommend"),
        "batch_sum": total("seqlens_batch_size_sum", stage="recommend"),
        "batch_count": total("seqlens_batch_size_count", stage="recommend"),
    }


def measured(port: int, pid: int, run) -> dict:
    """Run `run()` (a coroutine factory) and add server CPU per request and server-side mean latency."""
    before, cpu0 = server_side(port), cpu_seconds(pid)
    result = asyncio.run(run())
    after, cpu1 = server_side(port), cpu_seconds(pid)
    n = after["latency_count"] - before["latency_count"]
    batches = after["batch_count"] - before["batch_count"]
    result["server_cpu_ms_per_request"] = round((cpu1 - cpu0) * 1000 / max(n, 1), 2)
    result["server_mean_ms"] = round((after["latency_sum"] - before["latency_sum"]) * 1000 / max(n, 1), 2)
    result["mean_batch"] = round((after["batch_sum"] - before["batch_sum"]) / max(batches, 1), 2)
    return result


def percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    ms = np.asarray(latencies) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)}


def bodies(users: list[str], explain: bool, method: str, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    extra = {"explain": True, "method": method} if explain else {}
    return [json.dumps({"user_id": rng.choice(users), "k": 10, **extra}).encode() for _ in range(4096)]


async def sequential(port: int, payloads: list[bytes], n: int, warmup: int, raw: list | None = None) -> dict:
    """`n` requests one after another on one connection (after `warmup`); their latencies go to `raw` too."""
    conn = Connection(port)
    latencies, errors, statuses = [], 0, {}
    for i in range(warmup + n):
        start = time.perf_counter()
        status, _ = await conn.request("POST", "/v1/recommend", payloads[i % len(payloads)])
        if i >= warmup:
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
            errors += status != 200
    conn.close()
    if raw is not None:
        raw.extend(latencies)
    return {"requests": n, "errors": errors, "statuses": statuses, **percentiles(latencies)}


def with_and_without_log(
    model_dir: Path, payloads: list[bytes], n: int, rounds: int, workers: int, warmup: float
) -> dict:
    """Recommend latency one request at a time against three servers started here: two plain ones (the second a
    control: how far two identical servers differ on this machine) and one writing the request log, each warmed
    by `warmup` seconds of the same load, then measured in `rounds` rounds of `n` requests on each in turn, so
    that all see the same machine noise. (A server warmed longer than another is faster: first-call costs per
    sequence length last a few hundred requests.)"""
    folder = Path(tempfile.mkdtemp(prefix="seqlens-request-log-"))
    extra = {"plain": (), "control": (), "logged": ("--request-log", str(folder / "log"))}
    ports = {name: free_port() for name in extra}
    servers: dict[str, subprocess.Popen] = {}
    raw: dict[str, list[float]] = {name: [] for name in extra}
    try:
        for name in extra:  # inside the try: a server that fails to start stops the ones started before it
            servers[name] = start_server(model_dir, ports[name], workers, folder / f"{name}.log", extra=extra[name])
        for port in ports.values():
            asyncio.run(concurrent(port, payloads, 8, warmup))
        for _ in range(rounds):
            for name, port in ports.items():
                asyncio.run(sequential(port, payloads, n, warmup=20, raw=raw[name]))
    finally:
        for proc in servers.values():
            stop_server(proc)
    written = sum(len(path.read_text().splitlines()) for path in (folder / "log").glob("requests-*.jsonl*"))
    shutil.rmtree(folder, ignore_errors=True)
    plain, control, with_log = (percentiles(raw[name]) for name in extra)
    return {
        "requests_each": len(raw["plain"]), "records_written": written, "without_log": plain, "with_log": with_log,
        "control": control,
        "p50_ratio": round(with_log["p50_ms"] / plain["p50_ms"], 3), "p99_ratio": round(with_log["p99_ms"] / plain["p99_ms"], 3),
        "control_p50_ratio": round(control["p50_ms"] / plain["p50_ms"], 3),
        "control_p99_ratio": round(control["p99_ms"] / plain["p99_ms"], 3),
    }  # fmt: skip


async def concurrent(port: int, payloads: list[bytes], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = {"non_200": 0, "exceptions": 0}
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        conn, i = Connection(port), w
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                status, _ = await conn.request("POST", "/v1/recommend", payloads[i % len(payloads)])
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors["exceptions"] += 1
                conn.close()
                continue
            latencies.append(time.perf_counter() - start)
            errors["non_200"] += status != 200
            i += concurrency
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.perf_counter() - start
    return {
        "concurrency": concurrency, "seconds": round(wall, 1), "requests": len(latencies),
        "requests_per_s": round(len(latencies) / wall, 1), "errors": errors["non_200"] + errors["exceptions"],
        "error_kinds": errors, **percentiles(latencies),
    }  # fmt: skip


RELOAD_TOKEN = "benchmark-reload-token"  # the server is on loopback only, started by this script


async def reloading(
    port: int,
    payloads: list[bytes],
    concurrency: int,
    seconds: float,
    every: float,
    swaps: dict[str, Path] | None = None,
    store: Path | None = None,
) -> dict:
    """The concurrent load, with a reload every `every` seconds on its own connection. With `swaps` (variant name
    -> a model directory), the served directory `swaps["served"]` is replaced by each other variant in turn first.
    With `store` (the served model store), rollbacks alternate with promoting version 2 again and reloading."""
    reloads: list[dict] = []
    variants = [name for name in (swaps or {}) if name != "served"]

    async def reloader() -> None:
        conn = Connection(port)
        deadline = time.perf_counter() + seconds - every / 2
        while time.perf_counter() + every < deadline:
            await asyncio.sleep(every)
            variant = variants[len(reloads) % len(variants)] if swaps else "same"
            if swaps:
                shutil.rmtree(swaps["served"])
                shutil.copytree(swaps[variant], swaps["served"])
            endpoint = "reload"
            if store is not None:
                variant = endpoint = "rollback" if len(reloads) % 2 == 0 else "reload"
                if endpoint == "reload":
                    ModelStore(store).promote(2)
            start = time.perf_counter()
            head = (f"POST /v1/admin/{endpoint} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {RELOAD_TOKEN}"
                    "\r\nContent-Length: 0\r\n\r\n").encode()  # fmt: skip
            if conn.writer is None:
                await conn.open()
            conn.writer.write(head)
            status_line = await conn.reader.readline()
            length = 0
            while (line := await conn.reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await conn.reader.readexactly(length)
            reloads.append({"variant": variant, "status": int(status_line.split()[1]),
                            "seconds": round(time.perf_counter() - start, 3)})  # fmt: skip
        conn.close()

    load, _ = await asyncio.gather(concurrent(port, payloads, concurrency, seconds), reloader())
    by_variant = {
        v: {"reloads": sum(r["variant"] == v for r in reloads),
            "statuses": sorted({r["status"] for r in reloads if r["variant"] == v}),
            "seconds_max": max((r["seconds"] for r in reloads if r["variant"] == v), default=None)}
        for v in sorted({r["variant"] for r in reloads})
    }  # fmt: skip
    return {**load, "reloads": len(reloads), "reload_statuses": sorted({r["status"] for r in reloads}),
            "reload_seconds_max": max((r["seconds"] for r in reloads), default=None), "by_variant": by_variant}  # fmt: skip


def bad_variants(model_dir: Path, root: Path) -> dict[str, Path]:
    """The served copy and the variants `bad-reload` swaps in: NaN weights, two memory-bomb configs, the good model."""
    import torch

    import seqlens

    shutil.copytree(model_dir, root / "served")
    shutil.copytree(model_dir, root / "good")
    model = seqlens.load(model_dir)
    with torch.no_grad():
        next(model.net_.parameters()).fill_(float("nan"))
    model.save(root / "nan-weights")
    for name, param, value in (("max-len-bomb", "max_len", 8_000_000), ("dim-bomb", "dim", 2_000_000)):
        shutil.copytree(model_dir, root / name)
        config = json.loads((root / name / "config.json").read_text())
        config["params"][param] = value
        (root / name / "config.json").write_text(json.dumps(config))
    return {name: root / name for name in ("served", "nan-weights", "max-len-bomb", "dim-bomb", "good")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STALLED_HEAD = b"POST /v1/recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"  # and nothing more


def descriptors(root: int) -> int:
    """The most open file descriptors held by process `root` or one of its children (the workers)."""
    pids = server_pids(root)
    counts = [0]
    for pid in pids:
        try:
            counts.append(len(os.listdir(f"/proc/{pid}/fd")))
        except OSError:
            pass
    return max(counts)


async def stalled(port: int, pid: int, payloads: list[bytes], concurrency: int, seconds: float, n: int) -> dict:
    """The concurrent load while `n` connections stall in their request head, and /healthz probes."""
    deadline = time.perf_counter() + seconds
    ends: dict[str, int] = {}
    held, samples, fds, probes = [0], [], [], []

    async def holder() -> None:
        while time.perf_counter() < deadline - 0.3:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            except (TimeoutError, OSError):
                ends["connect failed"] = ends.get("connect failed", 0) + 1
                await asyncio.sleep(0.25)
                continue
            writer.write(STALLED_HEAD)
            held[0] += 1
            got, kind = b"", None
            try:
                while chunk := await asyncio.wait_for(reader.read(65536), max(0.01, deadline - time.perf_counter())):
                    got += chunk
                kind = got.split(b" ")[1].decode() if got.startswith(b"HTTP/1.1 ") else "closed, no answer"
            except TimeoutError:
                pass  # still held when the run ended
            except OSError:
                kind = "reset"
            held[0] -= 1
            writer.close()
            if kind is not None:
                ends[kind] = ends.get(kind, 0) + 1
                await asyncio.sleep(0.25)

    async def prober() -> None:
        while time.perf_counter() < deadline:
            conn, start = Connection(port), time.perf_counter()
            try:
                status, _ = await asyncio.wait_for(conn.request("GET", "/healthz"), 5)
            except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                status = 0
            probes.append((status, time.perf_counter() - start))
            conn.close()
            await asyncio.sleep(0.5)

    async def sampler() -> None:
        while time.perf_counter() < deadline:
            samples.append(held[0])
            fds.append(descriptors(pid))
            await asyncio.sleep(0.25)

    load, *_ = await asyncio.gather(
        concurrent(port, payloads, concurrency, seconds), *(holder() for _ in range(n)), prober(), sampler()
    )
    ok = [t for status, t in probes if status == 200]
    return {
        **load, "stalled": n, "stalled_open_mean": round(float(np.mean(samples)), 1) if samples else None,
        "stalled_ends": ends, "server_fds_max": max(fds, default=None), "healthz_probes": len(probes),
        "healthz_failed": len(probes) - len(ok), "healthz_max_ms": round(max(ok) * 1000, 1) if ok else None,
        "healthz_statuses": {str(s): sum(p == s for p, _ in probes) for s in sorted({p for p, _ in probes})},
    }  # fmt: skip


async def burst(port: int, payload: bytes, n: int) -> dict:
    """`n` connections opened at once, each sending one request (and Connection: close)."""
    head = (f"POST /v1/recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(payload)}\r\n\r\n").encode()  # fmt: skip

    async def one() -> tuple[str, bool, float]:
        start, status, retry = time.perf_counter(), "timeout", False
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
            writer.write(head + payload)
            line = await asyncio.wait_for(reader.readline(), 30)
            status = line.split()[1].decode() if line else "closed, no answer"
            while (field := await asyncio.wait_for(reader.readline(), 30)) not in (b"\r\n", b""):
                retry = retry or field.lower().startswith(b"retry-after:")
            writer.close()
        except TimeoutError:
            pass
        except OSError:
            status = "reset" if status == "timeout" else status  # after the answer's status line: answered
        return status, retry, time.perf_counter() - start

    start = time.perf_counter()
    answers = await asyncio.gather(*(one() for _ in range(n)))
    by_status: dict[str, dict] = {}
    for status in sorted({a[0] for a in answers}):
        times = [t for s, _, t in answers if s == status]
        by_status[status] = {
            "count": len(times), "with_retry_after": sum(r for s, r, _ in answers if s == status),
            **percentiles(times), "max_ms": round(max(times) * 1000, 1),
        }  # fmt: skip
    return {"connections": n, "seconds": round(time.perf_counter() - start, 2), "by_status": by_status}


def stop_server(proc: subprocess.Popen) -> None:
    """Ctrl-C to a `seqlens serve` started in its own session (its whole process group), a kill after 20 s."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_server(
    model_dir: Path, port: int, workers: int, log: Path, fd_limit: int | None = None, extra: tuple[str, ...] = ()
) -> subprocess.Popen:
    """`seqlens serve` in its own session; its output goes to `log` (a pipe nobody reads could fill and stall it)."""

    def limit_descriptors() -> None:
        if fd_limit is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(SEQLENS), "serve", str(model_dir), "--port", str(port), "--workers", str(workers),
             "--log-level", "info", *extra],
            stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "SEQLENS_RELOAD_TOKEN": RELOAD_TOKEN}, preexec_fn=limit_descriptors,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(100):
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not become healthy in 120 s")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of each concurrent run (max 600)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sequential", type=int, default=2000, help="one-at-a-time requests per mode")
    parser.add_argument("--method", default="attention")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of unmeasured load per mode first")
    parser.add_argument(
        "--modes",
        default="plain,explain",
        help="plain, explain, reload, bad-reload, rollback, request-log, stalled, burst (comma-separated)",
    )
    parser.add_argument("--reload-every", type=float, default=5.0, help="seconds between reloads (mode reload)")
    parser.add_argument("--stalled", type=int, default=300, help="stalled connections (mode stalled, max 2000)")
    parser.add_argument("--burst", type=int, default=600, help="connections opened at once (mode burst, max 2000)")
    parser.add_argument("--fd-limit", type=int, default=None, help="the server's limit on open files")
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args(argv)
    if not (
        0 < args.duration <= 600
        and 0 < args.concurrency <= 256
        and 0 < args.sequential <= 100_000
        and 0 <= args.warmup <= 60
        and 0 < args.stalled <= 2000
        and 0 < args.burst <= 2000
        and (args.fd_limit is None or args.fd_limit >= 64)
    ):
        raise SystemExit(
            "bounds: 0 < duration <= 600, 0 < concurrency <= 256, 0 < sequential <= 100000, 0 <= warmup <= 60, "
            "0 < stalled <= 2000, 0 < burst <= 2000, fd-limit >= 64"
        )
    users = json.loads((args.model_dir / "users.json").read_text())
    config = json.loads((args.model_dir / "config.json").read_text())
    port = free_port()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    server_log = Path(tempfile.gettempdir()) / "seqlens_serve_load.server.log"
    swaps, store = None, None
    modes = args.modes.split(",")
    if "bad-reload" in modes and "rollback" in modes:
        raise SystemExit("bad-reload and rollback serve different things (a copy, a store): run them separately")
    if "bad-reload" in modes:  # serve a copy that the mode replaces by broken models
        swaps = bad_variants(args.model_dir, Path(tempfile.mkdtemp(prefix="seqlens-bad-reload-")))
    if "rollback" in modes:  # serve a store of two versions
        store = Path(tempfile.mkdtemp(prefix="seqlens-rollback-")) / "store"
        for _ in range(2):
            ModelStore(store, create=True).add(args.model_dir, promote=True)
    served = swaps["served"] if swaps else store if store else args.model_dir
    proc = start_server(served, port, args.workers, server_log, args.fd_limit)
    result = {
        "model_dir": str(args.model_dir), "model": config["model"], "params": config["params"],
        "workers": args.workers, "fd_limit": args.fd_limit, "load_before": os.getloadavg(), "cpus": os.cpu_count(),
        "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
        "rss_mib_idle": rss_mib(proc.pid)[0], "modes": {},
    }  # fmt: skip
    try:
        # warm-up, not measured: a fresh worker pays first-call costs per sequence length (allocator,
        # kernels) for its first few hundred requests; every worker gets some via several connections
        for mode in args.modes.split(","):
            asyncio.run(concurrent(port, bodies(users, mode == "explain", args.method, seed=1), 8, args.warmup))
        for mode in args.modes.split(","):
            explain = mode == "explain"
            payloads = bodies(users, explain, args.method, seed=0)
            if mode == "stalled":
                load = measured(
                    port, proc.pid,
                    lambda p=payloads: stalled(port, proc.pid, p, args.concurrency, args.duration, args.stalled),
                )  # fmt: skip
                print(
                    f"stalled: concurrency {args.concurrency}, {args.stalled} stalled connections: {load}", flush=True
                )
                result["modes"][mode] = {"concurrent": load}
                continue
            if mode == "burst":
                time.sleep(1.0)  # the connections of earlier modes closed
                load = asyncio.run(burst(port, payloads[0], args.burst))
                print(f"burst: {load}", flush=True)
                result["modes"][mode] = load
                continue
            if mode == "request-log":
                load = with_and_without_log(args.model_dir, payloads, args.sequential, 10, args.workers, args.warmup)
                print(f"request-log: {load}", flush=True)
                result["modes"][mode] = load
                continue
            if mode in ("reload", "bad-reload", "rollback"):
                rss_before = rss_mib(proc.pid)[0]
                variants = swaps if mode == "bad-reload" else None
                kept = store if mode == "rollback" else None
                load = measured(
                    port, proc.pid,
                    lambda p=payloads, v=variants, k=kept: reloading(
                        port, p, args.concurrency, args.duration, args.reload_every, v, k
                    ),
                )  # fmt: skip
                load["rss_mib_before"], (load["rss_mib"], load["rss_peak_mib"]) = rss_before, rss_mib(proc.pid)
                print(
                    f"{mode}: concurrency {args.concurrency}, a reload every {args.reload_every} s: {load}", flush=True
                )
                result["modes"][mode] = {"concurrent": load}
                continue
            seq = measured(
                port, proc.pid, lambda payloads=payloads: sequential(port, payloads, args.sequential, warmup=50)
            )
            print(f"{mode}: one at a time {seq}", flush=True)
            conc = measured(
                port, proc.pid, lambda payloads=payloads: concurrent(port, payloads, args.concurrency, args.duration)
            )
            conc["rss_mib"], conc["rss_peak_mib"] = rss_mib(proc.pid)
            conc["rss_mib_by_process"] = rss_each(proc.pid)  # the supervisor first, then its children
            print(f"{mode}: concurrency {args.concurrency} {conc}", flush=True)
            result["modes"][mode] = {"sequential": seq, "concurrent": conc}
    finally:
        stop_server(proc)
        for made in (swaps["served"] if swaps else None, store):
            if made is not None:
                shutil.rmtree(made.parent, ignore_errors=True)
    result["load_after"] = os.getloadavg()
    log_text = server_log.read_text()
    result["worker_restarts"] = log_text.count("] died")
    result["server_errors_logged"] = log_text.count("ERROR")
    result["server_tracebacks_logged"] = log_text.count("Traceback")
    result["server_emfile_logged"] = log_text.count("out of system resource")
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
