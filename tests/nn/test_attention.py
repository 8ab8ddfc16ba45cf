"""Causal self-attention: masks, returned weights (raw and refined), causality, NaN safety, the fused path."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from seqlens.nn.attention import REFINEMENTS, SCORES, CausalSelfAttention, attention_mask, rotate
from seqlens.nn.sasrec import SASRecConfig

DIM, HEADS = 8, 2


def keep_mask(lengths, t):
    """Left padding: the last `n` positions of each row are real."""
    return torch.stack([torch.arange(t) >= t - n for n in lengths])


def config(**kw) -> SASRecConfig:
    return SASRecConfig(**{"n_items": 5, "dim": DIM, "heads": HEADS, "dropout": 0.0, "rank": 4, "max_len": 8, **kw})


def make(score="scaled_dot", dropout=0.0, seed=0, refinement="none"):
    torch.manual_seed(seed)
    return CausalSelfAttention(config(score=score, dropout=dropout, refinement=refinement), refinement).eval()


def assert_rows_are_distributions(w, keep):
    """Rows sum to 1 for real queries, are zero for padding queries; no weight above the diagonal or on padding."""
    assert torch.isfinite(w).all()
    sums = w.sum(-1)  # [B, H, T]
    valid = keep[:, None, :].expand_as(sums)
    torch.testing.assert_close(sums[valid], torch.ones(int(valid.sum())))
    assert (w[~valid] == 0).all()
    assert (w.triu(1) == 0).all()
    assert (w * ~keep[:, None, None, :] == 0).all()


def test_attention_mask_by_hand():
    keep = torch.tensor([[False, True, True]])
    mask = attention_mask(keep)
    assert mask.shape == (1, 1, 3, 3)
    assert mask[0, 0].int().tolist() == [
        [1, 0, 0],  # a padding query may only see itself
        [0, 1, 0],
        [0, 1, 1],
    ]


@pytest.mark.parametrize("refinement", REFINEMENTS)
@pytest.mark.parametrize("score", SCORES)
def test_weights_shape_rows_and_padding(score, refinement):
    t, lengths = 5, [0, 2, 5]
    att = make(score, refinement=refinement)
    x = torch.randn(3, t, DIM)
    keep = keep_mask(lengths, t)
    out, w = att(x, keep, return_attention=True)
    assert out.shape == (3, t, DIM)
    assert w.raw.shape == w.applied.shape == (3, HEADS, t, t)
    assert_rows_are_distributions(w.raw, keep)
    assert_rows_are_distributions(w.applied, keep)
    if refinement == "none":
        assert w.applied is w.raw
    else:
        assert not torch.allclose(w.applied, w.raw)


@given(
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=4),
    t=st.integers(1, 6),
    score=st.sampled_from(SCORES),
    refinement=st.sampled_from(REFINEMENTS),
    return_attention=st.booleans(),
)
def test_no_nan_even_for_all_padding_rows(lengths, t, score, refinement, return_attention):
    lengths = [min(n, t) for n in lengths]
    att = make(score, refinement=refinement)
    x = torch.randn(len(lengths), t, DIM) * 3
    keep = keep_mask(lengths, t)
    out, w = att(x, keep, return_attention=return_attention)
    assert torch.isfinite(out).all()
    if return_attention:
        assert_rows_are_distributions(w.raw, keep)
        assert_rows_are_distributions(w.applied, keep)


def test_output_is_the_applied_weights_times_values():
    """What an explanation shows is what multiplied V: out = proj(applied @ V), for every refinement."""
    x = torch.randn(2, 5, DIM)
    keep = keep_mask([3, 5], 5)
    for refinement in REFINEMENTS:
        att = make(refinement=refinement)
        out, w = att(x, keep, return_attention=True)
        v = att.qkv(x)[..., 2 * DIM :].view(2, 5, HEADS, DIM // HEADS).transpose(1, 2)
        expected = att.proj((w.applied @ v).transpose(1, 2).reshape(2, 5, DIM))
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_additive_mixes_raw_and_simple_refinement_with_the_gate():
    x = torch.randn(2, 5, DIM)
    keep = keep_mask([3, 5], 5)
    additive, simple = make(refinement="additive"), make(refinement="simple")
    simple.load_state_dict({k: v for k, v in additive.state_dict().items() if k != "gamma"})
    _, wa = additive(x, keep, return_attention=True)
    _, ws = simple(x, keep, return_attention=True)
    g = torch.sigmoid(additive.gamma)[None, :, None, None]
    torch.testing.assert_close(g, torch.full_like(g, 0.1))  # initialised near 0.1
    torch.testing.assert_close(wa.applied, (1 - g) * wa.raw + g * ws.applied)


def test_refinement_uses_the_rows_of_the_last_positions_for_short_batches():
    """A batch trimmed to T < max_len is right-aligned: its keys use the last T rows of W1 and W2."""
    att = make(refinement="simple")
    x = torch.randn(1, 3, DIM)
    keep = keep_mask([3], 3)
    padded = torch.cat([torch.zeros(1, 5, DIM), x], dim=1)  # same 3 items at the end of a max_len=8 window
    out, _ = att(x, keep)
    out_padded, _ = att(padded, keep_mask([3], 8))
    torch.testing.assert_close(out_padded[:, -3:], out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("refinement", REFINEMENTS)
@pytest.mark.parametrize("return_attention", [False, True])
def test_causality_later_inputs_do_not_change_earlier_outputs(score, refinement, return_attention):
    t = 6
    att = make(score, refinement=refinement)
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
@pytest.mark.parametrize("refinement", REFINEMENTS)
def test_every_score_and_refinement_trains(score, refinement):
    att = make(score, dropout=0.3, refinement=refinement).train()
    x = torch.randn(2, 4, DIM, requires_grad=True)
    keep = keep_mask([2, 4], 4)
    out, _ = att(x, keep)
    out[keep].pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grads = [p.grad for p in att.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_different_scores_give_different_attention():
    x = torch.randn(1, 4, DIM)
    keep = keep_mask([4], 4)
    weights = [make(score)(x, keep, return_attention=True)[1].raw for score in SCORES]
    assert not torch.allclose(weights[0], weights[1])
    assert not torch.allclose(weights[0], weights[2])


def test_bad_arguments_are_refused_by_the_config():
    with pytest.raises(ValueError, match="divisible"):
        config(dim=9, heads=2)
    with pytest.raises(ValueError, match="score='cosine'"):
        config(score="cosine")
    with pytest.raises(ValueError, match="refinement='deep'"):
        config(refinement="deep")
    with pytest.raises(ValueError, match="rotary=True needs a dot-product score"):
        config(score="additive", rotary=True)
    with pytest.raises(ValueError, match="dim/heads=3"):
        config(dim=6, heads=2, rotary=True)


def test_rotary_scores_depend_only_on_the_distance():
    """q_s . k_t after rotation is the same for every (s, t) pair the same distance apart, and differs across
    distances: what lets one head learn "the item k steps back" at every position."""
    t = 12
    q = torch.randn(1, 1, 1, 8).expand(1, 1, t, 8)  # the same query and key vector at every position
    k = torch.randn(1, 1, 1, 8).expand(1, 1, t, 8)
    logits = rotate(q) @ rotate(k).transpose(-2, -1)  # [1, 1, T, T]
    for distance in range(t):
        diagonal = torch.diagonal(logits[0, 0], offset=-distance)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), rtol=1e-4, atol=1e-4)
    assert torch.diagonal(logits[0, 0], offset=-1)[0] != torch.diagonal(logits[0, 0], offset=-2)[0]
    torch.testing.assert_close(rotate(q).norm(dim=-1), q.norm(dim=-1))  # a rotation keeps lengths
