"""Train/validation/test splits: leave-one-out by time (the literature's protocol) and global temporal.

A split never leaks: every validation or test interaction comes after all of that user's training
interactions, and the history used to score a test target is exactly what came before it.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from seqlens.data.log import TIME, InteractionLog
from seqlens.errors import DataError


class Split(NamedTuple):
    """`train`, `valid` (one held-out next interaction per user) and `test` logs.

    Score `valid` with `train` as history, and `test` with `test_history` (train + valid).
    """

    train: InteractionLog
    valid: InteractionLog
    test: InteractionLog

    @property
    def test_history(self) -> InteractionLog:
        return self.train.concat(self.valid)


def leave_one_out(log: InteractionLog, min_len: int = 3) -> Split:
    """Each user's last interaction is the test target and the one before it the validation target.

    Users with fewer than `min_len` interactions stay in `train` only (with a warning), since they cannot
    give both a target and a history.
    """
    _, starts, lengths = log.grouped()
    ends = starts + lengths
    eligible = lengths >= min_len
    if not eligible.any():
        raise DataError(f"{log.source}: no user has {min_len} or more interactions; leave-one-out needs {min_len}")
    short = int((~eligible).sum())
    if short:
        warnings.warn(
            f"{log.source}: {short} users with fewer than {min_len} interactions kept in train only", stacklevel=2
        )
    test_rows = ends[eligible] - 1
    valid_rows = ends[eligible] - 2
    mask = np.ones(len(log), dtype=bool)
    mask[test_rows] = False
    mask[valid_rows] = False
    df = log.df
    return Split(log._with(df[mask]), log._with(df.iloc[valid_rows]), log._with(df.iloc[test_rows]))


def temporal_split(log: InteractionLog, cutoff: int | None = None, quantile: float = 0.9) -> Split:
    """The production-like protocol: train on everything before `cutoff`, test on each user's next interaction.

    `cutoff` (seconds) defaults to the `quantile` of all timestamps. Only users with history before the
    cutoff and an interaction after it are tested. The validation target is each such user's last
    interaction before the cutoff (held out of `train` when the user keeps at least one training item).
    """
    if not log.has_time:
        raise DataError(f"{log.source}: a temporal split needs timestamps, and this log has none")
    t = log.df[TIME].to_numpy()
    if cutoff is None:
        cutoff = int(np.quantile(t, quantile))
    before = t < cutoff
    if before.all() or not before.any():
        raise DataError(f"{log.source}: cutoff {cutoff} leaves nothing on one side (timestamps {t.min()}..{t.max()})")
    _, starts, lengths = log.grouped()
    n_before = np.add.reduceat(before.astype(np.int64), starts)
    has_after = n_before < lengths
    test_rows = (starts + n_before)[(n_before > 0) & has_after]
    valid_rows = (starts + n_before - 1)[(n_before >= 2) & has_after]
    train_mask = before.copy()
    train_mask[valid_rows] = False
    df = log.df
    if len(test_rows) == 0:
        raise DataError(f"{log.source}: no user has interactions both before and after cutoff {cutoff}")
    return Split(log._with(df[train_mask]), log._with(df.iloc[valid_rows]), log._with(df.iloc[test_rows]))
