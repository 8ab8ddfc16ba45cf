"""compare(): paired per-user differences against a reference, seeds pooled, users checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqlens.errors import DataError
from seqlens.eval import EvalResult
from seqlens.eval.compare import compare
from seqlens.eval.significance import format_p, holm


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


def test_verdicts_use_holm_adjusted_p_values_across_the_table():
    """A difference significant alone is not called better once many tests share the table."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=400)
    noise = rng.normal(size=400)
    weak = base + noise / noise.std() - noise.mean() / noise.std() + 0.12  # mean difference 0.12, sd 1: p ~ 0.02
    models = {"ref": result(base), "weak": result(weak)}
    models.update({f"null{i}": result(base + rng.normal(size=400)) for i in range(8)})
    table = compare(models, reference="ref", metrics=("ndcg@10", "recall@10")).set_index(["model", "metric"])
    weak_row = table.loc[("weak", "ndcg@10")]
    assert weak_row["p_value"] < 0.05 < weak_row["p_holm"]
    assert weak_row["verdict"] == "no detectable difference"
    assert (table["p_holm"] >= table["p_value"]).all()


def test_holm_and_p_formatting():
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, 0.005])), [0.03, 0.06, 0.06, 0.02])
    assert format_p(0.0004) == "< 0.001" and format_p(0.0123) == "0.012"
