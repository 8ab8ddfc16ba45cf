"""compare(): paired per-user differences against a reference, seeds pooled, users checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqlens.errors import DataError
from seqlens.eval import EvalResult
from seqlens.eval.compare import compare


def result(values, users=None) -> EvalResult:
    users = users or [f"u{i}" for i in range(len(values))]
    per_user = pd.DataFrame({"user_id": users, "ndcg@10": values, "recall@10": values})
    return EvalResult({"ndcg@10": float(np.mean(values)), "recall@10": float(np.mean(values))}, per_user)


def test_better_worse_and_reference_rows():
    rng = np.random.default_rng(0)
    base = rng.random(500)
    table = compare(
        {"ref": result(base), "good": result(base + 0.1), "bad": result(base - 0.1)},
        reference="ref", metrics=("ndcg@10",),
    )  # fmt: skip
    verdicts = dict(zip(table["model"], table["verdict"]))
    assert verdicts == {"ref": "reference", "good": "better", "bad": "worse"}
    good = table.set_index("model").loc["good"]
    assert good["diff"] == pytest.approx(0.1) and good["ci_low"] == pytest.approx(0.1)
    assert good["n_users"] == 500


def test_pairs_by_user_not_by_row_order():
    base = np.linspace(0, 1, 50)
    users = [f"u{i}" for i in range(50)]
    shuffled = result(base[::-1].copy(), users[::-1])  # same values per user, other row order
    table = compare({"ref": result(base, users), "same": shuffled}, reference="ref", metrics=("ndcg@10",))
    same = table.set_index("model").loc["same"]
    assert same["diff"] == 0.0 and same["verdict"] == "no detectable difference"


def test_seeds_are_pooled_with_their_spread():
    base = np.full(100, 0.5)
    table = compare(
        {"ref": result(base), "seeds": [result(base + 0.1), result(base + 0.3)]}, reference="ref", metrics=("ndcg@10",)
    )
    row = table.set_index("model").loc["seeds"]
    assert row["seeds"] == 2 and row["mean"] == pytest.approx(0.7)
    assert row["seed_std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))


def test_different_users_or_unknown_reference_are_errors():
    a, b = result([0.1, 0.2, 0.3]), result([0.1, 0.2, 0.3], ["x", "y", "z"])
    with pytest.raises(DataError, match="different users"):
        compare({"a": a, "b": b}, reference="a")
    with pytest.raises(DataError, match="reference model 'c'"):
        compare({"a": a}, reference="c")
