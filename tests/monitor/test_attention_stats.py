"""Attention statistics: hand-computed cases, the `.applied` contract, and a real network's weights."""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
import torch

from seqlens.monitor import applied_weights, last_query_stats


class Weights(NamedTuple):  # the shape of seqlens.nn's AttentionWeights, without importing it
    raw: torch.Tensor
    applied: torch.Tensor


def last_row(rows: list[list[float]], t: int | None = None) -> torch.Tensor:
    """[B, H, T, T] weights whose last query row is given per head (other rows: zeros)."""
    t = t or len(rows[0])
    w = torch.zeros(1, len(rows), t, t)
    for h, row in enumerate(rows):
        w[0, h, -1] = torch.tensor(row)
    return w


def test_uniform_attention_has_maximal_entropy():
    stats = last_query_stats([last_row([[0.25] * 4])], torch.ones(1, 4, dtype=torch.bool))
    assert stats.entropy.item() == pytest.approx(math.log(4))
    assert stats.last_mass.item() == pytest.approx(0.25)
    assert stats.normalized_entropy().item() == pytest.approx(1.0)


def test_all_weight_on_the_last_item():
    stats = last_query_stats([last_row([[0, 0, 0, 1.0]])], torch.ones(1, 4, dtype=torch.bool))
    assert stats.entropy.item() == pytest.approx(0.0, abs=1e-7)
    assert stats.last_mass.item() == pytest.approx(1.0)
    assert stats.normalized_entropy().item() == pytest.approx(0.0, abs=1e-7)


def test_padding_keys_add_nothing_and_length_sets_the_maximum():
    # left padding: two padding positions with zero weight, then a uniform row over the 3 real items
    w = last_row([[0, 0, 1 / 3, 1 / 3, 1 / 3]])
    keep = torch.tensor([[False, False, True, True, True]])
    stats = last_query_stats([w], keep)
    assert stats.entropy.item() == pytest.approx(math.log(3))
    assert stats.lengths.tolist() == [3]
    assert stats.normalized_entropy().item() == pytest.approx(1.0)


def test_heads_are_averaged_and_layers_kept_apart():
    layer0 = last_row([[0.5, 0.5], [0.0, 1.0]])
    layer1 = last_row([[1.0, 0.0], [1.0, 0.0]])
    stats = last_query_stats([layer0, layer1], torch.ones(1, 2, dtype=torch.bool))
    assert stats.layers == 2
    assert stats.entropy[0].tolist() == pytest.approx([math.log(2) / 2, 0.0], abs=1e-7)
    assert stats.last_mass[0].tolist() == pytest.approx([0.75, 0.0])


def test_applied_weights_are_measured_not_raw():
    raw = last_row([[0.25] * 4])
    applied = last_row([[0, 0, 0, 1.0]])
    stats = last_query_stats([Weights(raw, applied)], torch.ones(1, 4, dtype=torch.bool))
    assert stats.last_mass.item() == pytest.approx(1.0)
    assert applied_weights(Weights(raw, applied)) is applied
    assert applied_weights(raw) is raw  # the older plain-tensor form


def test_wrong_inputs_raise():
    with pytest.raises(TypeError, match="expected attention weights"):
        applied_weights([[0.5, 0.5]])
    with pytest.raises(TypeError, match="expected attention weights"):
        applied_weights(torch.ones(2, 2))
    with pytest.raises(ValueError, match="no attention layers"):
        last_query_stats([], torch.ones(1, 2, dtype=torch.bool))


def test_a_real_network_gives_bounded_statistics():
    from seqlens.nn.sasrec import SASRecConfig, SASRecNet

    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(n_items=30, max_len=12, dim=16, layers=3, heads=2, dropout=0.0)).eval()
    seq = torch.tensor([[0, 0, 0, 4, 9, 2, 7], [5, 6, 7, 8, 9, 10, 11]])
    with torch.inference_mode():
        _, attentions = net(seq, return_attention=True)
    stats = last_query_stats(attentions, seq != 0)
    assert stats.entropy.shape == (2, 3) and stats.last_mass.shape == (2, 3)
    assert stats.lengths.tolist() == [4, 7]
    top = torch.log(stats.lengths.float())[:, None]
    assert (stats.entropy >= 0).all() and (stats.entropy <= top + 1e-5).all()
    assert ((stats.last_mass > 0) & (stats.last_mass <= 1)).all()
    n = stats.normalized_entropy()
    assert ((n >= 0) & (n <= 1 + 1e-5)).all()
