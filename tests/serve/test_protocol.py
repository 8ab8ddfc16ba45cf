"""`BoundedH11Protocol` under a tiny ASGI app in an in-process uvicorn, with short limits: stalled heads and
bodies are closed with 408, connections past the cap get 503 + Retry-After, a full server lets a stalled or
long-idle connection go for a newcomer, and slow-but-steady clients are still served."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import h11
import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from seqlens.serve.protocol import (
    ACCEPT_TURNS,
    FD_RESERVE,
    BoundedH11Protocol,
    Limits,
    accept_backlog,
    connection_cap,
)

pytestmark = pytest.mark.fault


async def app(scope, receive, send):
    """Reads the whole body (after `x-delay` seconds, if given), answers its length; `x-block` seconds
    blocks the event loop first (a busy server)."""
    if scope["type"] != "http":
        return
    delay, block = dict(scope["headers"]).get(b"x-delay"), dict(scope["headers"]).get(b"x-block")
    if block:
        time.sleep(float(block))
    if delay:
        await asyncio.sleep(float(delay))
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serve(limits: Limits) -> Iterator[int]:
    protocol = type("Tiny", (BoundedH11Protocol,), {"limits_override": limits})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, log_level="error", timeout_keep_alive=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def quick() -> Iterator[int]:
    """Short timeouts, room for many connections."""
    with serve(Limits(max_connections=50, header_timeout=0.5, body_timeout=0.5, body_deadline=1.5)) as port:
        yield port


@pytest.fixture
def small() -> Iterator[int]:
    """Three connections at most; idle ones yield their slot after 0.3 s."""
    with serve(Limits(max_connections=3, header_timeout=30, body_timeout=30, crowded_wait=0.3)) as port:
        yield port


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (the socket's timeout bounds the wait)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def response(sock: socket.socket) -> bytes:
    """One response (head and body, by its Content-Length) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.lower().split(b"\r\n")[1:])
    while len(body) < int(fields[b"content-length"]):
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def ask(sock: socket.socket, body: bytes = b"", extra: str = "") -> bytes:
    """One request on a kept-alive connection; the response's head and body."""
    sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)
    return response(sock)


def test_the_uvicorn_internals_this_module_reads_are_there():
    """What BoundedH11Protocol reads of uvicorn's H11Protocol beyond the asyncio protocol methods (see its
    module's doc). A uvicorn that renames them fails here first, not in production."""

    async def check():
        config = uvicorn.Config(app)
        config.load()
        state = ServerState()
        protocol = H11Protocol(config, state, {})
        assert isinstance(protocol.conn, h11.Connection)
        assert protocol.conn.their_state is h11.IDLE and protocol.conn.our_state is h11.IDLE
        assert protocol.server_state is state and isinstance(state.connections, set)
        assert callable(protocol.on_response_complete)
        assert isinstance(config.backlog, int)

    asyncio.run(check())


def test_a_stalled_request_head_is_answered_408_and_closed(quick):
    with connect(quick) as sock:
        start = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHo")  # and nothing more
        answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert 0.4 < time.monotonic() - start < 5
    with connect(quick) as sock:  # a client that connects and sends nothing is closed too
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_that_stops_or_trickles_is_answered_408_and_closed(quick):
    with connect(quick) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")
    with connect(quick) as sock:  # a byte every 0.1 s: never idle for the body timeout, but past the deadline
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        start, closed = time.monotonic(), False
        while time.monotonic() - start < 5 and not closed:
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
            time.sleep(0.1)
            sock.setblocking(False)
            try:
                closed = closed or sock.recv(65536).startswith(b"HTTP/1.1 408 ")
            except BlockingIOError:
                pass
            except OSError:
                closed = True
            sock.setblocking(True)
        assert closed and 1.3 < time.monotonic() - start < 5


def test_slow_but_steady_clients_and_kept_alive_connections_are_served(quick):
    with connect(quick) as sock:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n"
        for i in range(0, len(head), 20):  # the head in pieces, complete within the header timeout
            sock.sendall(head[i : i + 20])
            time.sleep(0.05)
        for _ in range(3):  # the body in pieces, each within the body timeout
            time.sleep(0.3)
            sock.sendall(b"ab")
        data = response(sock)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n6"), data
        time.sleep(1.0)  # idle between requests longer than the header timeout: uvicorn's keep-alive (5 s) rules
        assert ask(sock, b"hello").startswith(b"HTTP/1.1 200 ")


def test_time_the_app_takes_to_read_a_body_does_not_count_against_the_client(quick):
    body = b"x" * 600_000  # more than uvicorn buffers before it stops reading (64 KiB)
    with connect(quick) as sock:
        answer = ask(sock, body, "x-delay: 1.2\r\n")  # the app reads after 1.2 s, past the body timeout
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"600000"), answer[:200]


def test_past_the_cap_a_new_connection_is_answered_503_with_retry_after_at_once(small):
    busy = [connect(small) for _ in range(3)]
    try:
        for sock in busy:  # requests in progress (bodies still coming): not idle, so no slot to free
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nxx")
        time.sleep(0.5)
        with connect(small) as extra:
            start = time.monotonic()
            answer = read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"retry-after: 1\r\n" in answer.lower() and b"connection: close" in answer.lower()
        assert time.monotonic() - start < 2
        for sock in busy:  # the three are still served
            sock.sendall(b"x" * 98)
            assert response(sock).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in busy:
            sock.close()


def test_a_refused_client_whose_request_had_already_arrived_still_reads_the_503(small):
    """Closing a socket with unread data resets the connection, and asyncio's streams (aiohttp's too) then
    raise instead of handing over the 503 that came first: the server reads what came before closing."""
    busy = [connect(small) for _ in range(3)]
    try:
        for sock in busy[:2]:  # requests in progress
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nxx")
        time.sleep(0.3)
        busy[2].sendall(b"POST / HTTP/1.1\r\nHost: x\r\nx-block: 1\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.2)  # the server's loop is blocked for a second: the requests below arrive before it looks

        async def refused_after_sending() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", small)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            try:
                return await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()

        async def twenty() -> list[bytes]:
            return await asyncio.gather(*(refused_after_sending() for _ in range(20)))

        answers = asyncio.run(twenty())
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), answers
        assert response(busy[2]).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in busy:
            sock.close()


def test_when_full_a_connection_stalled_in_its_head_yields_its_slot_at_once():
    """The slow-client pattern (half a head, then nothing) gives way to a newcomer at any age, so clients
    reconnecting as fast as they are closed cannot keep probes out; idle-but-young connections stay."""
    with serve(Limits(max_connections=3, header_timeout=30, body_timeout=30, crowded_wait=30)) as port:
        held = [connect(port) for _ in range(3)]
        try:
            held[1].sendall(b"GET / HTTP/1.1\r\nHo")
            time.sleep(0.2)
            held.append(connect(port))
            assert ask(held[3], b"abc").startswith(b"HTTP/1.1 200 ")  # the newcomer is served
            assert read_all(held[1]).startswith(b"HTTP/1.1 408 ")  # told why
            with connect(port) as another:  # nothing stalled left, the others too young to yield: refused
                assert read_all(another).startswith(b"HTTP/1.1 503 ")
            for sock in (held[0], held[2]):
                sock.settimeout(0.2)
                with pytest.raises(TimeoutError):  # still open
                    sock.recv(1)
        finally:
            for sock in held:
                sock.close()


def test_when_full_the_longest_idle_connection_yields_its_slot(small):
    idle = [connect(small) for _ in range(3)]
    try:
        time.sleep(0.5)  # all three idle longer than crowded_wait
        with connect(small) as newcomer:
            assert ask(newcomer, b"abc").startswith(b"HTTP/1.1 200 ")
        closed = []
        for sock in idle:
            sock.settimeout(0.3)
            try:
                closed.append(sock.recv(65536).startswith(b"HTTP/1.1 408 "))
            except TimeoutError:
                closed.append(False)
        assert closed == [True, False, False]  # the oldest went, told why
    finally:
        for sock in idle:
            sock.close()


def test_the_cap_leaves_room_below_the_descriptor_limit(monkeypatch):
    monkeypatch.delenv("SEQLENS_MAX_CONNECTIONS", raising=False)
    for fds in (256, 512, 1024, 4096, 1 << 20):
        backlog = accept_backlog(fds)
        cap = connection_cap(fds, backlog)
        assert cap >= 64 and cap + ACCEPT_TURNS * backlog + FD_RESERVE <= fds, (fds, backlog, cap)
    assert connection_cap(1 << 20, accept_backlog(1 << 20)) == 256
    monkeypatch.setenv("SEQLENS_MAX_CONNECTIONS", "10")
    assert connection_cap(1 << 20, accept_backlog(1 << 20)) == 10
