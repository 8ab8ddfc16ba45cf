import numpy as np
import pandas as pd
import pytest
import torch

from seqlens.data import read_items
from seqlens.errors import DataError
from seqlens.eval.protocol import targets_with_histories
from seqlens.monitor.audit import audit, calibrated_top_k, trade_off


@pytest.fixture(scope="module")
def genres(synth_log):
    """Each synthetic item's genre, read from its title ('Item 17 (genre C)')."""
    titles = synth_log.titles()
    frame = pd.DataFrame(
        {"item_id": list(titles), "genre": [t.split("(genre ")[1].rstrip(")") for t in titles.values()]}
    )
    return read_items(frame, categorical=["genre"])


def test_the_audit_compares_attention_with_histories_and_exposure_with_interactions(fitted, synth_split, genres):
    _, histories, _ = targets_with_histories(fitted, synth_split.test, synth_split.test_history)
    frame = audit(fitted, histories, genres, "genre", k=5, bootstrap=200)
    for share in ("history_share", "attention_share", "interaction_share", "exposure_share"):
        assert frame[share].sum() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(frame["attention_ratio"], frame["attention_share"] / frame["history_share"])
    assert "other" not in set(frame["value"])  # eight genres: none pooled
    assert (frame["exposure_ratio_low"] <= frame["exposure_ratio"] + 1e-9).all()
    flagged = (frame["exposure_ratio_low"] > 1.25) | (frame["exposure_ratio_high"] < 0.8)
    assert (frame["exposure_ratio_flagged"] == flagged).all()


def test_an_empty_history_is_refused(fitted, genres):
    from seqlens.data import Sequences

    with pytest.raises(DataError, match="each with a history"):
        audit(fitted, Sequences.from_lists([[]]), genres, "genre")


def test_calibrated_reranking_keeps_the_ranking_at_zero_and_matches_the_target_at_one():
    scores = torch.tensor([[-np.inf, 5.0, 4.0, 3.0, 2.0, 1.0]])
    pooling = np.array([[0, 0], [1, 0], [1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)  # items 1-3: value a
    target = np.array([0.5, 0.5])
    assert calibrated_top_k(scores, pooling, target, 2, 0.0).tolist() == [[1, 2]]
    assert calibrated_top_k(scores, pooling, target, 2, 1.0).tolist()[0][1] == 4  # the second slot goes to value b
    with pytest.raises(DataError, match="lam=2"):
        calibrated_top_k(scores, pooling, target, 2, 2.0)


def test_stronger_calibration_narrows_the_exposure_gap(fitted, synth_split, genres):
    _, histories, targets = targets_with_histories(fitted, synth_split.test, synth_split.test_history)
    frame = trade_off(fitted, histories, targets, genres, "genre", (0.0, 0.9), k=10)  # slots for every genre
    assert frame["exposure_gap"].iloc[1] < frame["exposure_gap"].iloc[0]
