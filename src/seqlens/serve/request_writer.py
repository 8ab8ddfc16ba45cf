"""The request log's writer: a child process of each service worker that builds the records and writes them.

Building and writing a second's records (JSON of each request's statistics and ids) took the worker's
interpreter lock from the requests it was serving: in a thread, p99 latency rose 1.8x one request at a time
(docs/monitoring.md). Here that work runs in its own process and interpreter; the worker only hands over the
numbers (`serve/request_log.py`). This module imports neither torch nor the service, so the process starts
in a fraction of a second.

Run as `python -m seqlens.serve.request_writer PATH MAX_BYTES BACKUPS`; messages arrive on stdin as pickled
lists, each preceded by its length (8 bytes, little-endian): ("catalogue", key, item_ids, buckets, n_buckets)
once per served model, then ("batch", key, when, history lengths, histories or None, used, recommended,
(statistic names, their [batch, statistics, layers] table) or None, last-layer attention rows or None) per
micro-batch of requests, every array `pack`ed.
Records are JSON lines in `requests-<worker pid>.jsonl`, rotated by logging's `RotatingFileHandler`.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import pickle
import signal
import struct
import sys
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np

#: the length that precedes each pickled list of messages
HEADER = struct.Struct("<Q")
#: the most recent models' catalogues kept (batches a swapped-out model was still answering may follow its successor's)
CATALOGUES_KEPT = 4


def main(source: BinaryIO, path: str, max_bytes: int, backups: int) -> None:
    """Write what arrives on `source` until the worker closes it."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the worker shuts down and closes the
    # pipe, and this process writes what it was sent before it exits (the end of input is its only stop signal)
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    catalogues: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
    try:
        while len(header := source.read(HEADER.size)) == HEADER.size:
            messages = pickle.loads(source.read(HEADER.unpack(header)[0]))
            lines = []
            for message in messages:
                if message[0] == "catalogue":
                    catalogues[message[1]] = message[2:]
                    for old in list(catalogues)[:-CATALOGUES_KEPT]:  # reloads: the old models' batches are done
                        del catalogues[old]
                else:
                    lines += [json.dumps(e, separators=(",", ":")) for e in batch_records(message, catalogues)]
            if lines:  # one write per frame, not per micro-batch: each write costs a flush and a rollover check
                handler.handle(logging.makeLogRecord({"msg": "\n".join(lines)}))
    finally:
        handler.close()


def frame(messages: list) -> bytes:
    """What `main` reads: the pickled messages preceded by their length."""
    data = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def pack(array: np.ndarray) -> tuple[bytes, str, tuple[int, ...]]:
    """An array as raw bytes, dtype and shape: pickled many times faster than the array itself."""
    return array.tobytes(), array.dtype.str, array.shape


def unpack(packed: tuple[bytes, str, tuple[int, ...]]) -> np.ndarray:
    data, dtype, shape = packed
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def batch_records(message: tuple, catalogues: dict[int, tuple[np.ndarray, np.ndarray, int]]) -> list[dict]:
    """The records of one micro-batch (see the module docstring for the message)."""
    _, key, when, lengths, histories, used, recommended, stats, last_rows = message
    item_ids, buckets, n_buckets = catalogues[key]
    used, recommended = [unpack(u) for u in used], [unpack(r) for r in recommended]
    n = len(used)
    per_request: Sequence[dict | None] = [None] * n if stats is None else statistics_rows(stats[0], unpack(stats[1]))
    last_rows = [unpack(a) for a in last_rows] if last_rows is not None else [None] * n
    ids = [item_ids[unpack(h) - 1].tolist() for h in histories] if histories is not None else [None] * n
    return [
        request_record(
            when,
            lengths[b],
            used[b],
            item_ids[recommended[b] - 1].tolist(),
            per_request[b],
            last_rows[b],
            buckets,
            n_buckets,
            ids[b],
        )
        for b in range(n)
    ]


def statistics_rows(names: Sequence[str], table: np.ndarray) -> list[dict]:
    """Each request's statistics {"entropy@0": ..., ...} from the batch's [B, statistics, layers] table."""
    keys = [f"{name}@{layer}" for name in names for layer in range(table.shape[2])]
    return [dict(zip(keys, row)) for row in table.reshape(len(table), -1).astype(np.float64).round(6).tolist()]


def request_record(
    when: float,
    history_length: int,
    used: np.ndarray,
    recommended: list[str],
    stats: dict | None,
    last_rows: np.ndarray | None,
    buckets: np.ndarray,
    n_buckets: int,
    history_ids: list[str] | None = None,
) -> dict:
    """One request's line: `used` the internal indices read, `last_rows` the last layer's attention [heads, T]
    over them, `buckets` every item's popularity bucket (of `n_buckets`)."""
    entry: dict = {"time": round(when, 3), "length": int(len(used)), "history_length": int(history_length),
                   "recommended": recommended}  # fmt: skip
    if stats is not None:
        entry["stats"] = stats
    if last_rows is not None and len(used):
        weights = last_rows.mean(0, dtype=np.float64)
        entry["attention_by_popularity"] = np.bincount(buckets[used], weights, minlength=n_buckets).round(6).tolist()
    if len(used):
        entry["latest_popularity"] = int(buckets[used[-1]])
    if history_ids is not None:
        entry["history"] = history_ids
    return entry


if __name__ == "__main__":
    main(sys.stdin.buffer, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
