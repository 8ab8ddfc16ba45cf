"""Faithfulness curves on a tiny model, and trigger hits on the planted test bed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import seqlens
from seqlens.errors import DataError
from seqlens.eval.protocol import targets_with_histories
from seqlens.explain import METHODS, Attributions, explain
from seqlens.explain import planted as planted_module
from seqlens.explain.faithfulness import RANDOM, RECENCY, faithfulness, top_k_mask
from seqlens.explain.planted import trigger_hits


@pytest.fixture(scope="module")
def result(model, synth_split):
    _, histories, _ = targets_with_histories(model, synth_split.test, synth_split.test_history)
    return faithfulness(model, histories, n_users=40, draws=3, seed=0)


def test_table_has_every_method_and_finite_numbers(result):
    table = result.table
    assert list(table.index) == [*METHODS, RECENCY, RANDOM]
    assert np.isfinite(table.to_numpy(dtype=float)).all()
    assert table.loc["occlusion", "spearman"] == pytest.approx(1.0)
    assert table.loc["occlusion", "of_occlusion_margin@3"] == pytest.approx(1.0)
    assert table.loc[RECENCY, "x_recency@3"] == pytest.approx(1.0) and table.loc[RECENCY, "top1_latest"] == 1.0
    for k in (1, 2, 3, 5):
        assert table[f"left_top10@{k}"].between(0, 1).all() and table[f"in_top10@{k}"].between(0, 1).all()
    assert table.loc["occlusion", "of_occlusion@3"] == pytest.approx(1.0)
    assert table["top1_latest"].between(0, 1).all()
    assert table.loc[RANDOM, "x_random@3"] == pytest.approx(1.0)
    assert result.protocol["n_users"] == 40
    assert table.loc["attention", "aopc"] == pytest.approx(
        np.mean([table.loc["attention", f"drop@{k}"] for k in (1, 2, 3, 5)])
    )


def test_occlusion_never_names_an_item_whose_removal_raises_the_score(result):
    """Its top item is named only when positive, and then its own removal lowers the score by definition."""
    assert result.table.loc["occlusion", "top1_against"] == 0.0
    assert result.agreement.set_index("method").loc["occlusion", "top1_against"].dropna().eq(0).all()


def test_drops_pair_methods_per_user(result):
    drops = result.drops(3)
    assert len(drops) == result.protocol["n_users"] and {"masking", RECENCY, RANDOM} <= set(drops.columns)
    assert drops.mean()["masking"] == pytest.approx(result.table.loc["masking", "drop@3"])


def test_occlusion_is_the_best_single_deletion_for_every_user(result):
    """Deleting occlusion's top item removes, by construction, the largest single-item drop."""
    one = result.per_user[(result.per_user["curve"] == "deletion") & (result.per_user["k"] == 1)]
    wide = one.pivot(index="row", columns="method", values="score")
    for method in METHODS:
        assert (wide["occlusion"] >= wide[method] - 1e-4).all(), method


def test_deletion_of_everything_but_k_matches_insertion_of_the_rest(model, synth_split):
    """Curves come from real perturbed histories: recompute one user's numbers through recommend()."""
    _, histories, _ = targets_with_histories(model, synth_split.test, synth_split.test_history)
    res = faithfulness(model, histories, methods=("occlusion",), ks=(1, 2), n_users=1, draws=1, seed=3)
    row = int(res.per_user["row"].iloc[0])
    history = list(model.decode_items(histories[row]))[-model.max_len :]
    e = explain(model, history=history, method="occlusion")
    order = np.argsort(-e.scores, kind="stable")

    def score(items):
        recs = model.recommend(histories={"h": items}, k=model.n_items_, exclude_seen=False)
        return float(recs.loc[recs["item_id"] == e.recommended, "score"].iloc[0])

    for k in (1, 2):
        mine = res.per_user[(res.per_user["method"] == "occlusion") & (res.per_user["k"] == k)].set_index("curve")
        kept = [h for j, h in enumerate(history) if j not in set(order[:k])]
        assert mine.loc["deletion", "score"] == pytest.approx(e.score - score(kept), abs=1e-4)
        only = [h for j, h in enumerate(history) if j in set(order[:k])]
        assert mine.loc["insertion", "score"] == pytest.approx(score(only), abs=1e-4)


def test_top_k_mask_picks_the_highest_real_positions():
    scores = torch.tensor([[9.0, 0.1, 0.5, 0.3, 0.2]])
    real = torch.tensor([[False, True, True, True, True]])
    assert top_k_mask(scores, real, 2).tolist() == [[False, False, True, True, False]]


def test_faithfulness_rejects_short_histories_and_bad_options(model, synth_split):
    _, histories, _ = targets_with_histories(model, synth_split.test, synth_split.test_history)
    with pytest.raises(DataError, match="no history has more than 100 items"):
        faithfulness(model, histories, ks=(100,))
    with pytest.raises(DataError, match="unknown; choose one of"):
        faithfulness(model, histories, methods=("magic",))
    with pytest.raises(DataError, match="ks must be positive"):
        faithfulness(model, histories, ks=(0,))


@pytest.fixture(scope="module")
def planted_model():
    planted = seqlens.planted_log(n_users=150, n_items=60, n_triggers=5, mean_length=25, seed=1)
    split = seqlens.leave_one_out(planted.log)
    model = seqlens.SASRec(dim=16, max_len=50, epochs=2, progress=False).fit(split.train, split.valid)
    return planted, model


def test_trigger_hits_table(planted_model):
    planted, model = planted_model
    table = trigger_hits(model, planted, methods=("attention", "occlusion"))
    last = planted.truth[planted.truth["is_last"]]
    assert set(table["family"]) == {"all", "long_range", "second_order"}
    assert (table.loc[table["family"] == "all", "cases"] == len(last)).all()
    assert table["hit"].between(0, 1).all() and (table["hit_distant"] <= table["hit"] + 1e-12).all()
    assert (table["hit3"] >= 0).all() and (table["predicted"] <= table["cases"]).all()
    assert (table["top1"] <= table["predicted"]).all()


def test_trigger_positions_are_mapped_back_to_the_sequence(planted_model, monkeypatch):
    """A fake method that always points at the latest history item hits exactly the second-order B triggers."""
    planted, model = planted_model

    def latest(net, seq, method, target, rule="min", times=None):
        scores = torch.zeros(seq.shape)
        scores[:, -1] = 1.0
        return Attributions(scores, target, torch.zeros(len(seq)))

    monkeypatch.setattr(planted_module, "attribute", latest)
    table = trigger_hits(model, planted, methods=("attention",)).set_index("family")
    assert table.loc["second_order", "hit"] == 1.0 and table.loc["second_order", "hit_distant"] == 0.0
    assert table.loc["long_range", "hit"] == 0.0  # a long-range trigger is 10 to 40 steps back
    missed = table.loc["long_range", "miss_latest_top1"]
    assert np.isnan(missed) or missed == 1.0  # every miss of this method is the latest item


def test_trigger_families_report_every_family():
    planted = seqlens.trigger_families(n_users=400, n_items=120, mean_length=40, seed=2)
    split = seqlens.leave_one_out(planted.log)
    model = seqlens.SASRec(dim=16, max_len=50, epochs=2, progress=False).fit(split.train, split.valid)
    table = trigger_hits(model, planted, methods=("masking",))
    assert set(table["family"]) == {"all", *seqlens.data.synthetic.FAMILIES}
    assert table["hit3"].between(0, 1).all()
