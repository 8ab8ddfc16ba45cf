"""Per-request records of what the model did, appended to rotating JSON-lines files off the request path.

`seqlens serve --request-log DIR` writes one line per recommend request: its time, history length, the
recommended ids, the attention statistics of the last query per layer, the last layer's attention mass per
popularity bucket and the popularity bucket of the latest item. No history item ids unless
`--request-log-history` asks for them. `seqlens monitor MODEL --requests DIR` reads the files back and
checks the windows for drift, as it does for a replayed log.

A request only appends its batch's numbers (numpy arrays) to a bounded buffer. A sender thread wakes every
`SEND_SECONDS` and passes what came, pickled, over a pipe to a writer process (`request_writer.py`, a child
interpreter reading its stdin), which builds the records and writes them through logging's
`RotatingFileHandler` (a new file past `max_bytes`, `backups` kept). Building and writing in a thread of the worker took its interpreter lock from the requests
(p99 1.8x, measured); the pipe's write releases it. Each worker has its own writer and file
(`requests-<pid>.jsonl`), so workers never share one.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import numpy as np
import torch

from seqlens.monitor import AttentionStats
from seqlens.monitor.attention_stats import STATISTICS
from seqlens.monitor.windows import POPULARITY_BUCKETS
from seqlens.serve import request_writer

if TYPE_CHECKING:
    from seqlens.serve.engine import Engine, Query, Result

log = logging.getLogger("seqlens.serve")

MAX_BYTES = 64 * 2**20
BACKUPS = 20
#: batches waiting to be sent; past this (a stalled disk, a slow writer) batches are dropped, never the request
QUEUE_SIZE = 10_000
#: how often the sender thread passes what was queued to the writer process
SEND_SECONDS = 0.1


class RequestLog:
    """The folder's log for this process; `record` never blocks (a full buffer drops and counts the batch)."""

    def __init__(self, folder: str | Path, history: bool = False, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.folder, self.history, self.dropped = Path(folder), history, 0
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pending: collections.deque = collections.deque()
        self._catalogues: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()  # engine -> its key
        self._keys = itertools.count(1)
        # a fresh interpreter, not a fork: the worker runs threads (torch's, the sender) that a fork copies half-way
        path = str(self.folder / f"requests-{os.getpid()}.jsonl")
        self._writer = subprocess.Popen(
            [sys.executable, "-m", request_writer.__name__, path, str(max_bytes), str(backups)], stdin=subprocess.PIPE
        )
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send_every, args=(SEND_SECONDS,), daemon=True)
        self._sender.start()

    def record(self, when: float, engine: Engine, queries: Sequence[Query], results: Sequence[Result],
               stats: AttentionStats | None) -> bool:  # fmt: skip
        """Queue one micro-batch's numbers (no records are built here: the writer process builds them); False
        when the buffer is full and the batch was dropped instead."""
        if len(self._pending) >= QUEUE_SIZE:
            self.dropped += 1
            return False
        if engine not in self._catalogues:  # the first batch of a model: the writer needs its ids and buckets
            key = self._catalogues[engine] = next(self._keys)
            self._pending.append(("catalogue", key, np.asarray(engine.model.item_ids_, dtype=object),
                                  engine.buckets, POPULARITY_BUCKETS))  # fmt: skip
        by_name = stats.by_name() if stats is not None else None
        table = torch.stack([by_name[name] for name in STATISTICS], 1).numpy() if by_name is not None else None
        attended = all(r.attentions for r in results)  # the last layer's weights [heads, T] of each request
        pack = request_writer.pack
        self._pending.append((
            "batch", self._catalogues[engine], when, [len(q.items) for q in queries],
            [pack(q.items) for q in queries] if self.history else None,
            [pack(r.used) for r in results], [pack(r.items) for r in results],
            None if table is None else (STATISTICS, pack(table)),  # [B, statistics, layers]
            [pack(r.attentions[-1].numpy()) for r in results if r.attentions] if attended else None,
        ))  # fmt: skip
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued, let the writer finish writing it, and stop both; a writer that has not finished
        within `timeout` seconds (a stalled disk) is killed, so a shutdown never hangs on it."""
        self._stop.set()
        self._sender.join(timeout)
        with contextlib.suppress(OSError):
            cast(IO[bytes], self._writer.stdin).close()  # the writer's end of input: it writes what it has and exits
        try:
            self._writer.wait(timeout)
        except subprocess.TimeoutExpired:
            self._writer.kill()
            self._writer.wait()

    def _send_every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self._send()
        self._send()

    def _send(self) -> None:
        batch = []
        while self._pending:
            batch.append(self._pending.popleft())
        if batch:
            try:
                pipe = cast(IO[bytes], self._writer.stdin)
                pipe.write(request_writer.frame(batch))  # the interpreter lock is released while the pipe is written
                pipe.flush()
            except OSError as e:  # the writer is gone (killed): what is logged is lost, never a request
                if not self.dropped:
                    log.error("the request log's writer process is gone (%s): records are dropped from now on", e)
                self.dropped += len(batch)
