"""The byte-mask Dropout: keep rate, scaling, eval identity, reproducibility."""

from __future__ import annotations

import pytest
import torch

from seqlens.nn.dropout import Dropout

N = 80_000  # 10,000 draws per byte lane; a lane's keep rate has standard deviation <= 0.005


def keep_rate(p):
    """The exact Bernoulli keep probability of the byte mask: bytes >= round(p * 256) are kept."""
    return 1 - round(p * 256) / 256


@pytest.mark.parametrize("p", [0.5, 0.2, 0.1, 0.7])
def test_keeps_about_one_minus_p_and_scales(p):
    torch.manual_seed(0)
    y = Dropout(p).train()(torch.ones(N))
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01
    assert abs(kept.float().mean().item() - keep_rate(p)) < 0.01
    torch.testing.assert_close(y[kept], torch.full((int(kept.sum()),), 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 0.03  # expectation preserved


def test_every_byte_of_a_draw_is_used_fairly():
    torch.manual_seed(1)
    kept = (Dropout(0.5).train()(torch.ones(N)) != 0).float().view(-1, 8)
    lanes = kept.mean(0)  # position within each 64-bit draw
    assert ((lanes - 0.5).abs() < 0.025).all(), lanes


def test_neighbouring_entries_are_independent():
    torch.manual_seed(2)
    kept = (Dropout(0.5).train()(torch.ones(N)) != 0).float()
    both = (kept[1:] * kept[:-1]).mean().item()
    assert abs(both - 0.25) < 0.01


def test_eval_mode_and_zero_p_are_identity():
    x = torch.randn(4, 5)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_reproducible_under_manual_seed():
    d = Dropout(0.3).train()
    x = torch.randn(3, 7, 5)  # 105 elements: not a multiple of 8
    torch.manual_seed(42)
    a = d(x)
    torch.manual_seed(42)
    b = d(x)
    c = d(x)
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_gradient_is_the_scaled_mask():
    x = torch.ones(1000, requires_grad=True)
    torch.manual_seed(3)
    y = Dropout(0.25).train()(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.75)


def test_p_one_drops_everything():
    assert torch.equal(Dropout(1.0).train()(torch.ones(16)), torch.zeros(16))
