"""Shared fixtures: tiny hand-made logs, the small synthetic log, and a fast, quiet test environment."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, settings

import seqlens
from seqlens.data.log import InteractionLog

# The suite runs next to long benchmarks on a 2-core machine: one thread avoids oversubscription.
torch.set_num_threads(1)

settings.register_profile(
    "seqlens",
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("seqlens")


def frame(rows, with_time: bool = True) -> pd.DataFrame:
    """rows: (user, item[, timestamp]) tuples -> a DataFrame with the library's column names."""
    cols = ["user_id", "item_id", "timestamp"] if with_time else ["user_id", "item_id"]
    return pd.DataFrame([r[: len(cols)] for r in rows], columns=cols)


@pytest.fixture
def make_log():
    """Factory: make_log([(user, item, t), ...], with_time=True) -> InteractionLog."""

    def make(rows, with_time: bool = True) -> InteractionLog:
        return InteractionLog.from_frame(frame(rows, with_time))

    return make


@pytest.fixture
def tiny_log() -> InteractionLog:
    """Three users: u1 has 4 interactions, u2 has 3, u3 has 2 (too short for leave-one-out)."""
    rows = [
        ("u1", "a", 1), ("u2", "x", 5), ("u1", "b", 2), ("u3", "p", 1), ("u1", "c", 3),
        ("u2", "y", 6), ("u1", "d", 4), ("u3", "q", 2), ("u2", "z", 7),
    ]  # fmt: skip
    return InteractionLog.from_frame(frame(rows))


@pytest.fixture(scope="session")
def synth_log() -> InteractionLog:
    return seqlens.synthetic_log(n_users=200, n_items=50, mean_length=12, seed=0)


@pytest.fixture(scope="session")
def synth_split(synth_log):
    return seqlens.leave_one_out(synth_log)


@pytest.fixture(scope="session")
def fitted(synth_split):
    """A small SASRec fitted on the synthetic split (shared by the tests that only read it)."""
    model = seqlens.SASRec(max_len=20, dim=16, layers=1, epochs=2, progress=False, seed=0)
    return model.fit(synth_split.train, valid=synth_split.valid)
