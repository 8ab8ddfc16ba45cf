"""benchmarks/awrsr_study.py: what a variant name and a backbone stand for."""

import pytest

from benchmarks.awrsr_study import DESIGN_VARIANTS, study_params, variant_params


def test_a_variant_name_stands_for_its_refinement_rank_and_blocks():
    assert variant_params("none") == {"refinement": "none"}
    assert variant_params("simple@r8") == {"refinement": "simple", "rank": 8}
    assert variant_params("additive@last") == {"refinement": "additive", "refine_layers": [-1]}
    assert variant_params("simple@r64@last") == {"refinement": "simple", "rank": 64, "refine_layers": [-1]}
    with pytest.raises(SystemExit, match="'deep' is neither"):
        variant_params("simple@deep")
    assert all("@" in v for v in DESIGN_VARIANTS)


def test_the_bce_backbone_is_the_original_loss_with_stosas_beauty_settings_and_our_other_settings_kept():
    ce, bce = study_params("beauty"), study_params("beauty", "bce")
    assert (bce["loss"], bce["layers"], bce["heads"], bce["dropout"], bce["max_len"]) == ("bce", 1, 4, 0.3, 100)
    assert ce["loss"] == "ce" and ce["max_len"] == 50
    assert study_params("ml-1m", "bce")["max_len"] == study_params("ml-1m")["max_len"]  # a window of its own
    changed = {"loss", "layers", "heads", "dropout", "max_len", "epochs", "patience"}
    assert {k: bce[k] for k in set(bce) - changed} == {k: ce[k] for k in set(ce) - changed}
