"""Per-request records of what the model did, appended to rotating JSON-lines files off the request path.

`seqlens serve --request-log DIR` writes one line per recommend request: its time, history length, the
recommended ids, the attention statistics of the last query per layer, the last layer's attention mass per
popularity bucket and the popularity bucket of the latest item. No history item ids unless
`--request-log-history` asks for them. `seqlens monitor MODEL --requests DIR` reads the files back and
checks the windows for drift, as it does for a replayed log.

A request only puts a reference to its batch on a queue; a writer thread wakes once a second, builds the
records and writes them through logging's `RotatingFileHandler` (a new file past `max_bytes`, `backups` kept).
Each worker process writes its own file (`requests-<pid>.jsonl`), so workers never share one.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from seqlens.monitor import AttentionStats
from seqlens.monitor.attention_stats import STATISTICS
from seqlens.monitor.windows import POPULARITY_BUCKETS

if TYPE_CHECKING:
    from seqlens.serve.engine import Engine, Query, Result

MAX_BYTES = 64 * 2**20
BACKUPS = 20
#: records waiting to be written; past this (a stalled disk) records are dropped, never the request
QUEUE_SIZE = 10_000
#: how often the writer thread wakes to write what was queued
FLUSH_SECONDS = 1.0


class RequestLog:
    """The folder's log for this process; `record` never blocks (a full queue drops and counts the record)."""

    def __init__(self, folder: str | Path, history: bool = False, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.folder, self.history, self.dropped = Path(folder), history, 0
        self.folder.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._handler = logging.handlers.RotatingFileHandler(
            self.folder / f"requests-{os.getpid()}.jsonl", maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(_JsonLine())
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_every, args=(FLUSH_SECONDS,), daemon=True)
        self._writer.start()

    def record(self, entries: Callable[[], list[dict]]) -> None:
        """Queue what builds some records (e.g. `functools.partial(batch_entries, ...)`): the writer thread
        builds them and writes them as JSON lines, so the request path only puts a reference on a queue."""
        try:
            self._queue.put_nowait(logging.makeLogRecord({"msg": entries}))
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        self._stop.set()
        self._writer.join()
        self._handler.close()

    def _write_every(self, seconds: float) -> None:
        """Wake every `seconds` and write what came meanwhile. A writer woken by every record (logging's
        QueueListener) took the interpreter lock from the next request each time: p50 latency +54%, measured."""
        while not self._stop.wait(seconds):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._handler.handle(self._queue.get_nowait())
            except queue.Empty:
                return


class _JsonLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        build = cast(Callable[[], list[dict]], record.msg)  # what `RequestLog.record` queued
        return "\n".join(json.dumps(entry, separators=(",", ":")) for entry in build())


def batch_entries(
    when: float,
    engine: Engine,
    queries: Sequence[Query],
    results: Sequence[Result],
    stats: AttentionStats | None,
    history: bool,
) -> list[dict]:
    """The records of one micro-batch of recommend requests (built in the writer thread)."""
    per_request = batch_statistics(stats) if stats is not None else [None] * len(results)
    entries = []
    for query, result, row_stats in zip(queries, results, per_request):
        last = result.attentions[-1].mean(0).numpy().astype(np.float64) if result.attentions else None
        ids = engine.decode(query.items) if history else None
        entries.append(request_record(
            when, query.items, result.used, engine.decode(result.items), row_stats, last, engine.buckets, ids
        ))  # fmt: skip
    return entries


def batch_statistics(stats: AttentionStats) -> list[dict]:
    """Each request's attention statistics of a batch as {"entropy@0": ..., ...}, converted once per batch."""
    values = stats.by_name()
    names = [f"{name}@{layer}" for name in STATISTICS for layer in range(stats.layers)]
    table = np.concatenate([values[name].numpy() for name in STATISTICS], 1).round(6).tolist()  # [B][names]
    return [dict(zip(names, row)) for row in table]


def request_record(
    when: float,
    history: np.ndarray,
    used: np.ndarray,
    recommended: list[str],
    stats: dict | None,
    last_weights: np.ndarray | None,
    buckets: np.ndarray,
    history_ids: list[str] | None = None,
) -> dict:
    """One request's line: `history`/`used` internal indices, `stats` its `batch_statistics`, `last_weights`
    the last layer's head-mean attention over `used`, `buckets` every item's popularity bucket."""
    entry: dict = {"time": round(when, 3), "length": int(len(used)), "history_length": int(len(history)),
                   "recommended": recommended}  # fmt: skip
    if stats is not None:
        entry["stats"] = stats
    if last_weights is not None and len(used):
        entry["attention_by_popularity"] = np.bincount(
            buckets[used], last_weights, minlength=POPULARITY_BUCKETS
        ).round(6).tolist()  # fmt: skip
    if len(used):
        entry["latest_popularity"] = int(buckets[used[-1]])
    if history_ids is not None:
        entry["history"] = history_ids
    return entry
