"""Tiny fitted models shared by the explanation tests (fitting is the slow part, so each is fitted once)."""

from __future__ import annotations

import pytest

from seqlens import SASRec

# two layers and two heads, so per-head and per-layer code paths are exercised
TINY = dict(dim=16, max_len=20, layers=2, heads=2, epochs=3, dropout=0.2, progress=False, seed=0)


@pytest.fixture(scope="session")
def model(synth_split) -> SASRec:
    return SASRec(**TINY).fit(synth_split.train, synth_split.valid)


@pytest.fixture(scope="session")
def refined(synth_split) -> SASRec:
    """AWRSR's additive refinement: the weights that multiply V differ from the softmax weights."""
    return SASRec(refinement="additive", **TINY).fit(synth_split.train, synth_split.valid)


@pytest.fixture(scope="session")
def history(model) -> list[str]:
    """A known user's stored history (external ids, oldest first)."""
    return model.history_of("u3")
