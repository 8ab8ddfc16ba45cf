"""Next-item losses, computed only at real (non-padding) positions.

- `ce`: full softmax cross-entropy over the catalogue (the strong default; "SASRec+").
- `sampled`: softmax over the target and `n_negatives` shared sampled items, with log-Q correction
  (needed when negatives are drawn by popularity; a constant, hence harmless, when uniform).
- `bce`: binary cross-entropy with one uniform negative per position (the original SASRec paper).
- `gbce`: generalised BCE (Petrov & Macdonald, RecSys 2023) with `n_negatives` negatives and calibration `t`.
- `bpr`: Bayesian personalised ranking, -log sigmoid(s_target - s_negative), one uniform negative per position
  (STOSA's loss, on its negative Wasserstein distances).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from seqlens.nn.config import LOSSES


def next_item_loss(
    hidden: Tensor,
    targets: Tensor,
    item_emb: Tensor,
    loss: str = "ce",
    n_negatives: int = 256,
    sampling_probs: Tensor | None = None,
    gbce_t: float = 0.75,
) -> Tensor:
    """hidden [N, D] at real positions, targets [N] (item indices >= 1), item_emb [n_items + 1, D]."""
    n_items = item_emb.shape[0] - 1
    if loss == "ce":
        if torch.is_grad_enabled() and (hidden.requires_grad or item_emb.requires_grad):
            return _ChunkedSoftmaxCE.apply(hidden, item_emb[1:], targets - 1, 32)
        return F.cross_entropy(hidden @ item_emb[1:].T, targets - 1)
    if loss == "sampled":
        if sampling_probs is None:
            negatives = torch.randint(1, n_items + 1, (n_negatives,), device=hidden.device)
            log_q_pos, log_q_neg = torch.zeros(()), torch.zeros(())  # uniform sampling: the correction is a constant
        else:
            negatives = torch.multinomial(sampling_probs, n_negatives, replacement=True)
            log_q_pos, log_q_neg = sampling_probs[targets].log(), sampling_probs[negatives].log()[None, :]
        pos = (hidden * item_emb[targets]).sum(-1) - log_q_pos
        neg = hidden @ item_emb[negatives].T - log_q_neg
        neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([pos[:, None], neg], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))
    if loss in ("bce", "gbce"):
        k = 1 if loss == "bce" else n_negatives
        negatives = torch.randint(1, n_items + 1, (targets.shape[0], k), device=hidden.device)
        pos = (hidden * item_emb[targets]).sum(-1)
        neg = torch.einsum("nd,nkd->nk", hidden, item_emb[negatives])
        beta = 1.0
        if loss == "gbce":
            alpha = k / (n_items - 1)
            beta = alpha * (gbce_t * (1 - 1 / alpha) + 1 / alpha)
        not_target = (negatives != targets[:, None]).float()
        return -(beta * F.logsigmoid(pos) + (F.logsigmoid(-neg) * not_target).sum(-1)).mean()
    if loss == "bpr":
        negatives = uniform_negatives(targets, n_items)
        pos, neg = (hidden * item_emb[targets]).sum(-1), (hidden * item_emb[negatives]).sum(-1)
        return -F.logsigmoid(pos - neg).mean()
    raise ValueError(f"loss={loss!r}; choose one of {', '.join(LOSSES)}")


def uniform_negatives(targets: Tensor, n_items: int) -> Tensor:
    """One item per target [N], uniform over the catalogue 1..n_items without the target itself."""
    draw = torch.randint(1, n_items, targets.shape, device=targets.device)  # n_items - 1 choices
    return draw + (draw >= targets).long()  # skip the target: every other item equally likely


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Full-softmax cross-entropy whose gradients are computed chunk by chunk during the forward pass.

    The [N, n_items] logits are never held whole: each chunk of rows is multiplied out, turned into
    softmax - one-hot in place, and folded into the gradients while it is still in cache. On a 2-core
    CPU this is faster than autograd's logits -> log_softmax -> nll chain, and it bounds memory.
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, chunk: int) -> Tensor:
        grad_h, grad_w = torch.empty_like(hidden), torch.zeros_like(weight)
        total = hidden.new_zeros(())
        for lo in range(0, hidden.shape[0], chunk):
            h, t = hidden[lo : lo + chunk], targets[lo : lo + chunk, None]
            logits = h @ weight.T
            target_logits = logits.gather(1, t)
            # softmax in place (the chunk is the only copy): exp(logits - max) / sum, and the exact
            # logsumexp = max + log(sum) for the loss on the way
            top = logits.amax(dim=1, keepdim=True)
            probs = logits.sub_(top).exp_()
            norm = probs.sum(dim=1, keepdim=True)
            total += (top + norm.log() - target_logits).sum()
            probs.div_(norm)
            probs.scatter_add_(1, t, probs.new_full(t.shape, -1.0))  # d loss / d logits = softmax - onehot
            torch.mm(probs, weight, out=grad_h[lo : lo + chunk])
            grad_w.addmm_(probs.T, h)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.n = hidden.shape[0]
        return total / ctx.n

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.n
        return grad_h * scale, grad_w * scale, None, None
