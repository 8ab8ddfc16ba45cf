"""Calibration: ECE by hand, temperature scaling recovers a known temperature on simulated logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlens.data.sequences import Sequences
from seqlens.eval.calibration import reliability, top_one_probabilities


def test_ece_by_hand():
    confidence = np.array([0.1, 0.1, 0.9, 0.9])
    correct = np.array([False, False, True, False])
    ece, table = reliability(confidence, correct, bins=2)
    # equal-mass bins: the two 0.1s (acc 0) and the two 0.9s (acc 0.5)
    assert ece == pytest.approx(0.5 * 0.1 + 0.5 * 0.4)
    assert [row["users"] for row in table] == [2, 2]


def test_bins_hold_equal_numbers_of_users_even_when_confidences_crowd():
    rng = np.random.default_rng(0)
    confidence = rng.beta(1, 30, 943)  # small top-1 probabilities: equal-width bins put almost all in the first
    _, table = reliability(confidence, rng.random(943) < confidence, bins=10)
    assert len(table) == 10 and {row["users"] for row in table} <= {94, 95}


def test_perfectly_calibrated_predictions_have_small_ece():
    rng = np.random.default_rng(0)
    confidence = rng.random(20000)
    ece, _ = reliability(confidence, rng.random(20000) < confidence)
    assert ece < 0.02


class LogitScorer:
    """Scores are fixed logits; targets are drawn from softmax(logits / true_t), so the best temperature is true_t."""

    def __init__(self, logits):
        self.logits = logits
        self.n_items_ = logits.shape[1] - 1

    def score_histories(self, histories, rows):
        return self.logits[torch.from_numpy(rows)].clone()


def test_temperature_scaling_recovers_the_true_temperature():
    gen = torch.Generator().manual_seed(0)
    n, items, true_t = 4000, 30, 2.0
    logits = torch.randn(n, items + 1, generator=gen) * 3
    logits[:, 0] = float("-inf")
    targets = torch.multinomial(torch.softmax(logits / true_t, dim=1), 1, generator=gen)[:, 0].numpy()
    empty = Sequences(np.zeros(0, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64))
    probs = top_one_probabilities(LogitScorer(logits), empty, targets, exclude_seen=False)
    assert probs.best_temperature() == pytest.approx(true_t, rel=0.15)
    ece_raw, _ = reliability(*probs.at(1.0))
    ece_scaled, _ = reliability(*probs.at(probs.best_temperature()))
    assert ece_scaled < ece_raw and ece_scaled < 0.03
