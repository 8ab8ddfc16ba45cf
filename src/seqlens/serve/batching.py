"""Micro-batching: requests that are ready in the same event-loop turn share one forward pass.

Why: a single SASRec request spends most of its time in per-operation overhead (tens of small ops), so
eight histories in one padded batch cost little more than one. Nothing waits on a timer: the first
request of a turn schedules the flush with `call_soon`, which runs after every other request already
ready in that turn has queued itself. One request alone is served at once (a batch of one); under load,
the requests that arrived while the previous batch ran form the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger("seqlens.serve")


class MicroBatcher:
    """`await submit(key, item)` -> `run(key, [items...])[i]`; items with equal keys are run together."""

    def __init__(self, run: Callable[[Hashable, list], list], max_batch: int = 64):
        self._run = run
        self.max_batch = max_batch
        self._pending: list[tuple[Hashable, Any, asyncio.Future]] = []
        self._scheduled = False
        self.batches = 0  # batches run, for tests and metrics
        self.largest = 0

    async def submit(self, key: Hashable, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((key, item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        groups: dict[Hashable, list[tuple[Any, asyncio.Future]]] = {}
        for key, item, future in pending:
            if not future.cancelled():  # the client went away before its turn
                groups.setdefault(key, []).append((item, future))
        for key, entries in groups.items():
            for lo in range(0, len(entries), self.max_batch):
                self._run_chunk(key, entries[lo : lo + self.max_batch])

    def _run_chunk(self, key: Hashable, chunk: list[tuple[Any, asyncio.Future]]) -> None:
        self.batches += 1
        self.largest = max(self.largest, len(chunk))
        try:
            results = self._run(key, [item for item, _ in chunk])
        except Exception as error:
            if len(chunk) == 1:
                _, future = chunk[0]
                if not future.done():
                    future.set_exception(error)
                return
            # isolate the failure: each item alone, so one bad item fails only its own request
            for entry in chunk:
                self._run_chunk(key, [entry])
            return
        for (_, future), result in zip(chunk, results):
            if not future.done():
                future.set_result(result)
