"""STOSA's network: Wasserstein attention against a hand computation, weights that are distributions (padding rows
zero, no NaN), causality, the stochastic refinement, and scores that are exactly minus the squared distance."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqlens.nn.attention import REFINEMENTS, wasserstein
from seqlens.nn.config import STOSAConfig
from seqlens.nn.masking import one_pass_each
from seqlens.nn.stosa import STOSANet, WassersteinAttention
from tests.nn.test_attention import assert_rows_are_distributions, keep_mask

DIM, HEADS = 8, 2


def config(**kw) -> STOSAConfig:
    return STOSAConfig(**{"n_items": 9, "dim": DIM, "heads": HEADS, "dropout": 0.0, "rank": 4, "max_len": 6, **kw})


def net(seed=0, **kw) -> STOSANet:
    torch.manual_seed(seed)
    return STOSANet(config(**kw)).eval()


def test_distance_is_the_squared_wasserstein_distance_of_diagonal_gaussians():
    torch.manual_seed(0)
    m1, m2, v1, v2 = torch.randn(3, 4), torch.randn(5, 4), torch.rand(3, 4) + 0.1, torch.rand(5, 4) + 0.1
    by_hand = torch.tensor(
        [
            [((m1[i] - m2[j]) ** 2).sum() + ((v1[i].sqrt() - v2[j].sqrt()) ** 2).sum() for j in range(5)]
            for i in range(3)
        ]
    )
    torch.testing.assert_close(wasserstein(m1, v1, m2, v2), by_hand, rtol=1e-5, atol=1e-5)


def test_attention_against_a_hand_computation():
    torch.manual_seed(1)
    attn = WassersteinAttention(config(heads=1), "none").eval()
    mean, var = torch.randn(1, 3, DIM), torch.rand(1, 3, DIM) + 0.5
    keep = torch.ones(1, 3, dtype=torch.bool)
    out_mean, out_var, weights = attn(mean, var, keep, return_attention=True)
    q_m, k_m, v_m = attn.mean_qkv(mean)[0].chunk(3, -1)
    q_v, k_v, v_v = (F.elu(z) + 1 for z in attn.var_qkv(var)[0].chunk(3, -1))
    a = torch.zeros(3, 3)
    for i in range(3):
        d = torch.stack([((q_m[i] - k_m[j]) ** 2).sum() + ((q_v[i].sqrt() - k_v[j].sqrt()) ** 2).sum()
                         for j in range(i + 1)])  # fmt: skip
        a[i, : i + 1] = torch.softmax(-d / math.sqrt(DIM), 0)
    torch.testing.assert_close(weights.raw[0, 0], a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_mean[0], attn.mean_proj(a @ v_m), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_var[0], attn.var_proj((a * a) @ v_v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("refinement", REFINEMENTS)
def test_weights_are_distributions_padding_rows_zero_no_nan(refinement):
    model = net(refinement=refinement, layers=2)
    seq = torch.tensor([[0, 0, 0, 1, 2, 3], [0, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6]])
    hidden, weights = model(seq, return_attention=True)
    assert torch.isfinite(hidden).all() and (hidden[seq == 0] == 0).all()
    keep = keep_mask([3, 5, 6], 6)
    for w in weights:
        assert_rows_are_distributions(w.raw, keep)
        assert_rows_are_distributions(w.applied, keep)


@pytest.mark.parametrize("refinement", ["none", "stochastic"])
def test_causal_a_later_item_changes_nothing_before_it(refinement):
    model = net(refinement=refinement, layers=2)
    a = torch.tensor([[0, 1, 2, 3, 4, 5]])
    b = torch.tensor([[0, 1, 2, 3, 4, 9]])
    torch.testing.assert_close(model(a)[0][:, :-1], model(b)[0][:, :-1])
    assert not torch.allclose(model(a)[0][:, -1], model(b)[0][:, -1])


def test_scores_are_minus_the_squared_distance_to_each_item():
    model = net(layers=2)
    seq = torch.tensor([[0, 3, 1, 4], [5, 9, 2, 6]])
    hidden, _ = model(seq)
    scores = model.scores(hidden[:, -1])  # [B, n_items + 1]
    # the last position's Gaussian, recovered from the query form [2 mu, 2 s, ...]
    mean, s = hidden[:, -1, :DIM] / 2, hidden[:, -1, DIM : 2 * DIM] / 2
    items = torch.arange(1, 10)
    m_i, v_i = model.gaussians(items)
    expected = -wasserstein(mean, s.square(), m_i, v_i)
    torch.testing.assert_close(scores[:, 1:], expected, rtol=1e-4, atol=1e-4)
    assert (scores[:, 0] == float("-inf")).all()
    torch.testing.assert_close(model.score_of(hidden[:, -1], torch.tensor([3, 7])), scores[[0, 1], [3, 7]])


def test_positive_vs_negative_term_by_hand():
    model = net(pvn_weight=0.5)
    hidden = model(torch.tensor([[1, 2, 3]]))[0][:, -1]
    torch.manual_seed(5)
    term = model.extra_loss(hidden, torch.tensor([4]), 9)
    torch.manual_seed(5)
    negative = torch.randint(1, 9, (1,))
    negative = negative + (negative >= 4).long()  # uniform_negatives skips the target
    mean, s = hidden[:, :DIM] / 2, hidden[:, DIM : 2 * DIM] / 2
    m_t, v_t = model.gaussians(torch.tensor([4]))
    m_n, v_n = model.gaussians(negative)
    to_target = wasserstein(mean, s.square(), m_t, v_t)[0, 0]
    apart = wasserstein(m_t, v_t, m_n, v_n)[0, 0]
    torch.testing.assert_close(term, 0.5 * (to_target - apart).clamp(min=0), rtol=1e-4, atol=1e-5)


def test_hiding_a_position_is_one_pass_without_it():
    model = net(layers=2)
    seq = torch.tensor([[0, 1, 2, 3, 4, 5]])
    masked = model.masked_last_hidden(seq).hidden
    torch.testing.assert_close(masked[:, :-1], one_pass_each(model, seq, remove=False)[:, :-1])
    keep = torch.ones_like(seq, dtype=torch.bool)
    keep[0, 2] = False
    torch.testing.assert_close(masked[0, 2], model(seq, keep=keep)[0][0, -1])
