"""Causal self-attention: masks, returned weights, causality, NaN safety, and the fused SDPA path."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from seqlens.nn.attention import SCORES, CausalSelfAttention, attention_mask

DIM, HEADS = 8, 2


def keep_mask(lengths, t):
    """Left padding: the last `n` positions of each row are real."""
    return torch.stack([torch.arange(t) >= t - n for n in lengths])


def make(score="scaled_dot", dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return CausalSelfAttention(DIM, HEADS, dropout, score).eval()


def test_attention_mask_by_hand():
    keep = torch.tensor([[False, True, True]])
    mask = attention_mask(keep)
    assert mask.shape == (1, 1, 3, 3)
    assert mask[0, 0].int().tolist() == [
        [1, 0, 0],  # a padding query may only see itself
        [0, 1, 0],
        [0, 1, 1],
    ]


@pytest.mark.parametrize("score", SCORES)
def test_weights_shape_rows_and_padding(score):
    t, lengths = 5, [0, 2, 5]
    att = make(score)
    x = torch.randn(3, t, DIM)
    keep = keep_mask(lengths, t)
    out, w = att(x, keep, return_attention=True)
    assert out.shape == (3, t, DIM)
    assert w.shape == (3, HEADS, t, t)
    sums = w.sum(-1)  # [B, H, T]
    valid = keep[:, None, :].expand_as(sums)
    torch.testing.assert_close(sums[valid], torch.ones(int(valid.sum())))
    assert (w[~valid] == 0).all()  # padding-query rows are all zero
    assert (w.triu(1) == 0).all()  # causal: nothing above the diagonal
    assert (w * ~keep[:, None, None, :] == 0).all()  # no weight on padding keys


@given(
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=4),
    t=st.integers(1, 6),
    score=st.sampled_from(SCORES),
    return_attention=st.booleans(),
)
def test_no_nan_even_for_all_padding_rows(lengths, t, score, return_attention):
    lengths = [min(n, t) for n in lengths]
    att = make(score)
    x = torch.randn(len(lengths), t, DIM) * 3
    keep = keep_mask(lengths, t)
    out, w = att(x, keep, return_attention=return_attention)
    assert torch.isfinite(out).all()
    if return_attention:
        assert torch.isfinite(w).all()
        sums = w.sum(-1)
        valid = keep[:, None, :].expand_as(sums)
        torch.testing.assert_close(sums[valid], torch.ones(int(valid.sum())))
        assert (sums[~valid] == 0).all()


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("return_attention", [False, True])
def test_causality_later_inputs_do_not_change_earlier_outputs(score, return_attention):
    t = 6
    att = make(score)
    x = torch.randn(2, t, DIM)
    keep = keep_mask([4, 6], t)
    out, _ = att(x, keep, return_attention=return_attention)
    for j in range(2, t):
        x2 = x.clone()
        x2[:, j:] = torch.randn(2, t - j, DIM)
        out2, _ = att(x2, keep, return_attention=return_attention)
        torch.testing.assert_close(out2[:, :j], out[:, :j], rtol=0, atol=1e-6)
        assert not torch.allclose(out2[:, j:][keep[:, j:]], out[:, j:][keep[:, j:]])


def test_sdpa_path_matches_explicit_path_at_real_positions():
    att = make("scaled_dot")
    x = torch.randn(3, 5, DIM)
    keep = keep_mask([0, 3, 5], 5)
    fused, w_none = att(x, keep)
    explicit, w = att(x, keep, return_attention=True)
    assert w_none is None and w is not None
    torch.testing.assert_close(fused[keep], explicit[keep], rtol=1e-5, atol=1e-6)


def test_sdpa_path_matches_explicit_path_everywhere():
    att = make("scaled_dot")
    x = torch.randn(2, 4, DIM)
    keep = keep_mask([2, 4], 4)
    fused, _ = att(x, keep)
    explicit, _ = att(x, keep, return_attention=True)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("score", SCORES)
def test_every_score_trains(score):
    att = make(score, dropout=0.3).train()
    x = torch.randn(2, 4, DIM, requires_grad=True)
    keep = keep_mask([2, 4], 4)
    out, _ = att(x, keep)
    out[keep].pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grads = [p.grad for p in att.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_different_scores_give_different_attention():
    x = torch.randn(1, 4, DIM)
    keep = keep_mask([4], 4)
    weights = [make(score)(x, keep, return_attention=True)[1] for score in SCORES]
    assert not torch.allclose(weights[0], weights[1])
    assert not torch.allclose(weights[0], weights[2])


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(9, 2, 0.0)
    with pytest.raises(ValueError, match="score='cosine'"):
        CausalSelfAttention(8, 2, 0.0, "cosine")
