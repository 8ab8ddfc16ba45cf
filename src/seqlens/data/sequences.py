"""Item sequences as one flat array plus offsets, and vectorised left-padded batches of them.

Left padding keeps every user's most recent item in the last column, which is where SASRec reads its
prediction; a batch is only as wide as its longest member (capped at `max_len`), so short-history data
such as Beauty (mean length 9 of 50) wastes little compute on padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PAD = 0  # internal item index 0 is padding; real items are 1..n_items
#: the timestamp of an item whose time is not known (in `Sequences.times`, beside items with known times)
UNKNOWN_TIME = -(2**62)


@dataclass(frozen=True)
class Sequences:
    """`flat[starts[i] : starts[i] + lengths[i]]` is sequence i (internal item indices, oldest first); `times`, when
    known, holds each element's timestamp (integer seconds) at the same offsets. For a model that reads them, per
    row: `user_codes`, its user's attribute codes [len, columns], and `context_codes`, the context codes of the
    request that asks for its next item [len, columns] (see `data.codes`)."""

    flat: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    times: np.ndarray | None = None
    user_codes: np.ndarray | None = None
    context_codes: np.ndarray | None = None

    @classmethod
    def from_lists(
        cls, seqs: list[np.ndarray] | list[list[int]], times: Sequence[Sequence[int] | np.ndarray | None] | None = None
    ) -> Sequences:
        """Sequences from lists of item indices and, optionally, each one's timestamps (None for a sequence whose
        times are not known: `UNKNOWN_TIME`; no `times` at all, or none known: `times` is None)."""
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if len(seqs) else np.zeros(0, np.int64)
        if times is None or all(t is None for t in times):
            return cls(flat, starts, lengths)
        parts = [
            np.full(n, UNKNOWN_TIME) if t is None else np.asarray(t, dtype=np.int64)
            for t, n in zip(times, lengths, strict=True)
        ]
        if any(len(p) != n for p, n in zip(parts, lengths)):
            raise ValueError("each sequence's timestamps must be as many as its items")
        return cls(flat, starts, lengths, np.concatenate(parts) if parts else np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.starts[i] : self.starts[i] + self.lengths[i]]

    def times_of(self, i: int) -> np.ndarray | None:
        """Sequence i's timestamps (None when not known)."""
        return None if self.times is None else self.times[self.starts[i] : self.starts[i] + self.lengths[i]]

    def subset(self, rows: np.ndarray) -> Sequences:
        """The sequences at `rows` (indices or a boolean mask), in that order; the flat arrays are shared."""
        users = None if self.user_codes is None else self.user_codes[rows]
        context = None if self.context_codes is None else self.context_codes[rows]
        return Sequences(self.flat, self.starts[rows], self.lengths[rows], self.times, users, context)

    def explode(self) -> tuple[np.ndarray, np.ndarray]:
        """(row of each element, element) for all sequences in row order: a vectorised walk over items."""
        return np.repeat(np.arange(len(self)), self.lengths), self.flat[self._positions()]

    def _positions(self) -> np.ndarray:
        """Offsets into `flat` of every element, sequence by sequence (what `explode` reads)."""
        first = np.repeat(np.cumsum(self.lengths) - self.lengths, self.lengths)
        return np.repeat(self.starts, self.lengths) + np.arange(int(self.lengths.sum())) - first

    def without_padding(self) -> Sequences:
        """The same sequences with PAD entries (unknown items) dropped; itself when there are none."""
        rows, items = self.explode()
        keep = items != PAD
        if keep.all():
            return self
        lengths = np.bincount(rows[keep], minlength=len(self)).astype(np.int64)
        times = None if self.times is None else self.times[self._positions()][keep]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return Sequences(items[keep], starts, lengths, times, self.user_codes, self.context_codes)

    def padded(self, rows: np.ndarray, max_len: int, drop_last: int = 0) -> np.ndarray:
        """Left-padded [len(rows), T] array of the last `max_len` items of each row's sequence.

        `drop_last` removes that many items from the end first (training inputs drop the final item,
        whose role is to be a target). T is the longest such row, capped at `max_len`.
        """
        return self._padded(self.flat, rows, max_len, drop_last)

    def padded_times(self, rows: np.ndarray, max_len: int, drop_last: int = 0) -> np.ndarray | None:
        """The timestamps aligned with `padded(rows, max_len, drop_last)` (0 at padding); None when not known."""
        return None if self.times is None else self._padded(self.times, rows, max_len, drop_last)

    def _padded(self, values: np.ndarray, rows: np.ndarray, max_len: int, drop_last: int) -> np.ndarray:
        ends = self.starts[rows] + self.lengths[rows] - drop_last
        avail = np.clip(self.lengths[rows] - drop_last, 0, None)
        width = int(min(max_len, avail.max(initial=0))) or 1
        if len(values) == 0:
            return np.full((len(rows), width), PAD, dtype=np.int64)
        idx = ends[:, None] - width + np.arange(width)[None, :]
        valid = idx >= (ends - avail)[:, None]
        return np.where(valid, values[np.clip(idx, 0, max(len(values) - 1, 0))], PAD)

    def training_pair(self, rows: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (each sequence without its last item) and next-item targets, aligned and left-padded."""
        inputs = self.padded(rows, max_len, drop_last=1)
        return inputs, self.of_targets(self.flat, rows, inputs)

    def of_targets(self, values: np.ndarray, rows: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """`values` [len(flat), ...] (one per element) of the targets of `training_pair(rows, ...)`, whose `inputs`
        are given: [len(rows), T, ...], 0 where the input is padding."""
        ends = self.starts[rows] + self.lengths[rows]
        width = inputs.shape[1]
        idx = ends[:, None] - width + np.arange(width)[None, :]
        picked = values[np.clip(idx, 0, len(values) - 1)]
        real = (inputs != PAD).reshape(*inputs.shape, *([1] * (values.ndim - 1)))
        return np.where(real, picked, 0)
