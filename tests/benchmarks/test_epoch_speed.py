"""benchmarks/epoch_speed.py: its straightforward variant trains the same model on the same batches as seqlens."""

from __future__ import annotations

import pytest

import seqlens


def test_the_straightforward_loop_trains_what_fit_trains(synth_split):
    from benchmarks.epoch_speed import straightforward_fit

    params = dict(max_len=20, dim=16, layers=2, loss="ce", epochs=2, progress=False)
    # without dropout (the one random difference: the two dropouts draw their masks differently), the
    # same initial weights, batches and gradients give the same losses, epoch after epoch
    ours = seqlens.SASRec(**params, dropout=0.0).fit(synth_split.train).history_
    plain = straightforward_fit(synth_split.train, **params, dropout=0.0)
    assert [r["epoch"] for r in plain] == [1, 2]
    assert [r["loss"] for r in plain] == pytest.approx([r["loss"] for r in ours], rel=1e-5)
