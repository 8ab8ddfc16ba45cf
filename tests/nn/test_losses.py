"""Next-item losses: the chunked full-softmax CE against PyTorch's, and the sampled variants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqlens.nn.losses import LOSSES, next_item_loss

N, D, N_ITEMS = 70, 8, 12  # 70 rows: three chunks of 32, the last one partial


def leaves(seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    hidden = (torch.randn(N, D, generator=g) * scale).requires_grad_()
    emb = torch.randn(N_ITEMS + 1, D, generator=g).requires_grad_()
    targets = torch.randint(1, N_ITEMS + 1, (N,), generator=g)
    return hidden, emb, targets


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_chunked_ce_matches_cross_entropy(weight):
    h1, e1, targets = leaves()
    h2, e2, _ = leaves()
    loss = next_item_loss(h1, targets, e1, "ce")
    ref = F.cross_entropy(h2 @ e2[1:].T, targets - 1)
    torch.testing.assert_close(loss, ref, rtol=0, atol=1e-5)
    (loss * weight).backward()  # upstream gradients other than 1 must scale the result
    (ref * weight).backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=0, atol=1e-5)
    torch.testing.assert_close(e1.grad, e2.grad, rtol=0, atol=1e-5)
    assert (e1.grad[0] == 0).all()


def test_chunked_ce_only_hidden_requires_grad():
    h1, e1, targets = leaves()
    e1 = e1.detach()
    h2, e2, _ = leaves()
    next_item_loss(h1, targets, e1, "ce").backward()
    F.cross_entropy(h2 @ e2[1:].T, targets - 1).backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=0, atol=1e-5)


def test_ce_without_grad_is_plain_cross_entropy():
    h, e, targets = leaves()
    with torch.no_grad():
        loss = next_item_loss(h, targets, e, "ce")
    torch.testing.assert_close(loss, F.cross_entropy(h.detach() @ e.detach()[1:].T, targets - 1))


def test_chunked_ce_with_large_logits():
    hidden = torch.tensor([[100.0, 0.0]], requires_grad=True)
    emb = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    targets = torch.tensor([2])
    loss = next_item_loss(hidden, targets, emb, "ce")
    ref = F.cross_entropy(hidden.detach() @ emb.detach()[1:].T, targets - 1)  # = 200
    torch.testing.assert_close(loss.detach(), ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("loss_name", ["sampled", "bce", "gbce"])
def test_sampled_losses_are_finite_and_backprop(loss_name):
    torch.manual_seed(0)
    h, e, targets = leaves()
    loss = next_item_loss(h, targets, e, loss_name, n_negatives=5)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    for grad in (h.grad, e.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_sampled_with_popularity_probs():
    torch.manual_seed(0)
    h, e, targets = leaves()
    probs = torch.rand(N_ITEMS + 1)
    probs[0] = 0
    probs = probs / probs.sum()
    loss = next_item_loss(h, targets, e, "sampled", n_negatives=7, sampling_probs=probs)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(h.grad).all()


def test_sampled_loss_value():
    """Uniform sampled softmax = CE over [target, negatives], a negative equal to the target masked out."""
    h, e, targets = leaves()
    torch.manual_seed(3)
    loss = next_item_loss(h, targets, e, "sampled", n_negatives=6)
    torch.manual_seed(3)
    negatives = torch.randint(1, N_ITEMS + 1, (6,))
    pos = (h * e[targets]).sum(-1, keepdim=True)
    neg = (h @ e[negatives].T).masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    expected = -(torch.cat([pos, neg], 1).log_softmax(1)[:, 0]).mean()
    torch.testing.assert_close(loss, expected)


def test_gbce_loss_value():
    """gBCE (Petrov & Macdonald 2023): -beta*log s(pos) - sum log s(-neg), beta = a(t(1 - 1/a) + 1/a)."""
    h, e, targets = leaves()
    k, t = 4, 0.75
    torch.manual_seed(5)
    loss = next_item_loss(h, targets, e, "gbce", n_negatives=k, gbce_t=t)
    torch.manual_seed(5)
    negatives = torch.randint(1, N_ITEMS + 1, (N, k))
    alpha = k / (N_ITEMS - 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    pos = (h * e[targets]).sum(-1)
    neg = torch.einsum("nd,nkd->nk", h, e[negatives])
    neg_term = (F.logsigmoid(-neg) * (negatives != targets[:, None])).sum(-1)
    expected = -(beta * F.logsigmoid(pos) + neg_term).mean()
    torch.testing.assert_close(loss, expected)
    assert beta < 1  # calibration down-weights the positive term when few negatives are drawn


def test_unknown_loss():
    h, e, targets = leaves()
    assert "ce" in LOSSES
    with pytest.raises(ValueError, match="loss='hinge'"):
        next_item_loss(h, targets, e, "hinge")
