"""What every recommender shares, tested once: comparing a model's parameters with wanted ones."""

from __future__ import annotations

import seqlens
from seqlens import Popular, SASRec

from .conftest import FAST


def test_params_differ_names_the_models_values_that_do_not_match():
    model = SASRec(dim=32, progress=False)
    assert model.params_differ({"dim": 32, "layers": 2}) == {}  # layers: the default, as given
    assert model.params_differ({"dim": 64, "layers": 2, "heads": 1}) == {"dim": 32}
    assert model.params_differ({"progress": True}) == {}  # how training is shown, not what it learns
    assert model.params_differ({"colour": "red"}) == {"colour": None}  # a parameter it does not have
    assert Popular(period_days=7).params_differ({"period_days": None}) == {"period_days": 7}


def test_a_saved_model_is_reused_only_with_the_settings_it_was_trained_with(sasrec, tmp_path):
    sasrec.save(tmp_path / "model")
    loaded = seqlens.load(tmp_path / "model")
    assert loaded.params_differ({**FAST, "epochs": 3, "progress": True}) == {}
    assert loaded.params_differ({**FAST, "epochs": 5}) == {"epochs": 3}


def test_history_counts_are_the_interactions_per_item_of_the_stored_histories(tiny_log):
    model = Popular().fit(tiny_log)
    counts = model.history_counts()
    assert counts.shape == (model.n_items_ + 1,) and counts[0] == 0 and counts.sum() == len(tiny_log)
    assert counts[model.encode_items(["a"])[0]] == 1
