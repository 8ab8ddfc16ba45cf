"""uvicorn's HTTP/1.1 protocol (h11) with the bounds it lacks against slow and excess clients.

uvicorn 0.54 times out idle keep-alive connections, but nothing else: a client that opens a connection
and sends half a request line, or stops half-way through a body, holds the connection and its file
descriptor for ever. With 300 of them under a 256 file-descriptor limit, `accept()` failed with EMFILE,
asyncio logged a traceback per attempt (about 118,000 in 17 s) and `/healthz` timed out (issue 18).
`BoundedH11Protocol` adds, per connection:

- a header timeout: a request line and headers must be complete within `HEADER_TIMEOUT_SECONDS` of the
  connection opening (or of the request's first byte on a kept-alive connection); else `408` and close;
- a body timeout: a body must keep arriving, at most `BODY_TIMEOUT_SECONDS` between two pieces and
  `BODY_DEADLINE_SECONDS` in all (a trickle of a byte at a time counts as stalled); else `408` (if no
  answer has started) and close. Time the server itself does not read (the app has not consumed what
  came) does not count against the client;
- a connection cap kept below the file-descriptor limit (`connection_cap`): a connection beyond it is
  answered `503` with `Retry-After` and closed as soon as it is made, so `accept()` never runs out of
  descriptors. But when every slot is taken, a connection that holds one without using it gives it to
  the newcomer instead (closed; with a 408 unless it was kept alive between requests): first the one
  stalled longest in a half-sent request head (the slow-client pattern: a real client sends its head at
  once, so a stalled one yields at any age), else one idle (no request in progress, nothing sent) for
  `CROWDED_WAIT_SECONDS`. So stalled clients cannot lock out health probes and real clients for a whole
  header timeout, even when they reconnect as fast as they are closed; connections with a request in
  progress are never closed for a newcomer.

uvicorn's own concurrency limit stays off (`limit_concurrency=None`): past it, uvicorn answered *every*
request, on old connections too, with a bare 503 and no `Retry-After`. The cap above replaces its
connection count; the app's in-flight limit (`app.MAX_IN_FLIGHT`, 503 with `Retry-After`) bounds work.

Settings: the timeouts come from the environment (`SEQLENS_HEADER_TIMEOUT`, `SEQLENS_BODY_TIMEOUT`, in
seconds) so that `seqlens serve`'s worker processes see them; the cap from the process's descriptor
limit, which `raise_fd_limit` lifts to the hard limit at start, and `SEQLENS_MAX_CONNECTIONS` (lower only).

What this reads of uvicorn beyond the asyncio protocol methods (checked by
tests/serve/test_protocol.py::test_the_uvicorn_internals_this_module_reads_are_there, so an upgrade that
moves them fails the suite): `self.conn` (the h11.Connection, to tell where the client is in its
request), `self.server_state.connections` (the open connections), `on_response_complete` (called when
an answer has been sent) and the constructor's arguments.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import resource
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from seqlens.errors import SeqlensError

log = logging.getLogger("seqlens.serve")

#: per worker process: connections beyond this are answered 503 at once (fewer if descriptors are short)
MAX_CONNECTIONS = 256
HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 10.0
BODY_DEADLINE_SECONDS = 60.0  # 1 MiB (the largest body accepted) in a minute is 17 kB/s
#: when full, a connection idle this long (no request in progress, nothing sent) yields its slot to a new one
CROWDED_WAIT_SECONDS = 0.5
RETRY_AFTER_SECONDS = 1
#: descriptors kept for everything but client connections: the listening socket, model files, logs,
#: the worker's pipes, metrics files (a worker of `seqlens serve --workers 2` holds about 17 after serving)
FD_RESERVE = 64
#: uvicorn's default listen backlog
BACKLOG = 2048
#: asyncio accepts up to `backlog` connections per loop turn, and a refused one holds its descriptor for
#: about three more turns (transport made, refused, closed): the headroom holds that many turns' accepts
ACCEPT_TURNS = 4
#: one log line at most this often about connections closed or refused (a flood must not flood the log)
LOG_EVERY_SECONDS = 10.0

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: %d\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def _answer(template: bytes, message: str, *head: int) -> bytes:
    body = b'{"error": "%s"}' % message.encode()
    return template % (*head, len(body), body)


BUSY_ANSWER = _answer(BUSY, "busy: too many open connections; retry", RETRY_AFTER_SECONDS)
TIMEOUT_ANSWER = _answer(TIMED_OUT, "the request did not arrive in time")


def raise_fd_limit() -> int:
    """Lift this process's soft limit on open files to its hard limit (inherited by the workers); the
    soft limit now. Default soft limits (often 1024) are far below what a server may hold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. a hard limit above the kernel's nr_open
            pass
    return soft


def fd_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def accept_backlog(fds: int) -> int:
    """The listen backlog for a process allowed `fds` descriptors: uvicorn's default, smaller when
    descriptors are short (it is also how many connections asyncio accepts in one loop turn)."""
    return max(8, min(BACKLOG, (fds - FD_RESERVE) // (2 * ACCEPT_TURNS)))


def connection_cap(fds: int, backlog: int) -> int:
    """Open client connections a process allowed `fds` descriptors keeps at most, leaving room for its
    own descriptors and a few loop turns of accepted connections (so `accept()` never meets EMFILE)."""
    wanted = int(_setting("SEQLENS_MAX_CONNECTIONS", MAX_CONNECTIONS))
    return max(1, min(wanted, fds - FD_RESERVE - ACCEPT_TURNS * backlog))


def _setting(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:
        raise SeqlensError(f"{name} must be a positive number, got {raw!r}")
    return value


@dataclass(frozen=True)
class Limits:
    max_connections: int = MAX_CONNECTIONS
    header_timeout: float = HEADER_TIMEOUT_SECONDS
    body_timeout: float = BODY_TIMEOUT_SECONDS
    body_deadline: float = BODY_DEADLINE_SECONDS
    crowded_wait: float = CROWDED_WAIT_SECONDS


@functools.cache
def process_limits(backlog: int) -> Limits:
    """This process's limits: the cap from its descriptor limit, the timeouts from the environment
    (read once; `seqlens serve` checks them at start, so a bad value fails there, not per connection)."""
    return Limits(
        max_connections=connection_cap(fd_limit(), backlog),
        header_timeout=_setting("SEQLENS_HEADER_TIMEOUT", HEADER_TIMEOUT_SECONDS),
        body_timeout=_setting("SEQLENS_BODY_TIMEOUT", BODY_TIMEOUT_SECONDS),
    )


class _Tally:
    """Counts of connections closed or refused, logged as one line at most every LOG_EVERY_SECONDS."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.next_log = 0.0

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = time.monotonic()
        if now >= self.next_log:
            summary = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))
            log.warning("connections closed by the server since the last such line: %s", summary)
            self.counts, self.next_log = {}, now + LOG_EVERY_SECONDS


TALLY = _Tally()


def _discard_what_came(transport: asyncio.BaseTransport) -> None:
    """Read what the client already sent: closing a socket with unread data resets the connection (RST)
    and a client may then lose the 503 it was sent. (The transport has not started reading yet.)"""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            os.read(sock.fileno(), 1 << 16)
        except OSError:  # nothing there (EAGAIN), or already reset
            pass


class BoundedH11Protocol(H11Protocol):
    """uvicorn's H11Protocol plus header and body timeouts and a connection cap (see the module's doc)."""

    #: set in a subclass to use fixed limits instead of the process's (tests)
    limits_override: Limits | None = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = self.limits_override or process_limits(config.backlog)
        self.turned_away = False
        #: since when no request has been in progress (None while one is), and since when the bytes of an
        #: incomplete request head have been arriving (None before the first): who yields a slot when full
        self.idle_since: float | None = None
        self.head_since: float | None = None
        self._phase: str | None = None  # "head" or "body" while a timer watches the client
        self._phase_start = 0.0
        self._last_data = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._clock = _loop or asyncio.get_running_loop()  # made by the server's loop, for its connections

    # asyncio protocol methods

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        if len(self.server_state.connections) >= self.limits.max_connections and not self._free_a_slot():
            self.turned_away = True
            TALLY.add("refused (503, at the connection cap)")
            transport.write(BUSY_ANSWER)
            _discard_what_came(transport)
            transport.close()
            return
        super().connection_made(transport)
        self.idle_since = self._clock.time()
        self._watch("head", self.limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.turned_away:
            return
        super().data_received(data)
        self._last_data = self._clock.time()
        self._follow(data_arrived=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.turned_away:
            return
        self._unwatch()
        self.idle_since = self.head_since = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._follow(data_arrived=False)

    # where the client stands

    def _follow(self, data_arrived: bool) -> None:
        """Arm the timer that fits where the client is in its request, as h11 sees it."""
        state, now = self.conn.their_state, self._clock.time()
        if state is h11.IDLE:  # between requests, or a request's head not complete yet
            if self.idle_since is None:
                self.idle_since = now
            if data_arrived and self.head_since is None:
                self.head_since = now
            if data_arrived and self._phase != "head":  # a new request began on a kept-alive connection
                self._watch("head", self.limits.header_timeout)
        elif state is h11.SEND_BODY:
            self.idle_since = self.head_since = None
            if self._phase != "body":
                self._watch("body", self.limits.body_timeout)
        else:  # the request is in: the app works on it, nothing to wait for from the client
            self.idle_since = self.head_since = None
            self._unwatch()

    def _watch(self, phase: str, seconds: float) -> None:
        self._unwatch()
        self._phase, self._phase_start = phase, self._clock.time()
        self._last_data = self._phase_start
        self._timer = self._clock.call_later(seconds, self._check)

    def _unwatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._phase = None, None

    def _check(self) -> None:
        """The timer fired: close a stalled client, or wait longer where it was not the client's fault."""
        self._timer = None
        if self.transport.is_closing():
            return
        now = self._clock.time()
        if self._phase == "body":
            if not self.transport.is_reading():  # paused by uvicorn: the app has not read what came yet
                self._last_data = self._phase_start = now
            idle_left = self._last_data + self.limits.body_timeout - now
            total_left = self._phase_start + self.limits.body_deadline - now
            if min(idle_left, total_left) > 0:
                self._timer = self._clock.call_later(min(idle_left, total_left), self._check)
                return
        self.close_stalled(f"{self._phase} timeout")

    def close_stalled(self, reason: str) -> None:
        """Close this connection; a client whose request is incomplete and unanswered is told why (408)."""
        if self._phase is not None and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(TIMEOUT_ANSWER)
            reason += " (408)"
        TALLY.add(reason)
        self._unwatch()
        self.idle_since = self.head_since = None  # not chosen twice while its close is pending
        self.transport.close()

    def _free_a_slot(self) -> bool:
        """At the cap: close the connection stalled longest in a half-sent head, else the one idle longest
        if idle CROWDED_WAIT_SECONDS; False if every connection has a request in progress or just came."""
        now, chosen, rank = self._clock.time(), None, (2, 0.0)
        for other in self.server_state.connections:
            if not isinstance(other, BoundedH11Protocol) or other.idle_since is None:
                continue
            if other.head_since is not None:
                mine = (0, other.head_since)
            elif now - other.idle_since >= self.limits.crowded_wait:
                mine = (1, other.idle_since)
            else:
                continue
            if mine < rank:
                chosen, rank = other, mine
        if chosen is None:
            return False
        chosen.close_stalled("yielded its slot to a new connection (the server was full)")
        return True
