"""Six ways to attribute a next-item score to the history positions, all batched over users.

Every method takes left-padded internal item indices `seq` [B, T] (padding 0, most recent item in the
last column, as `Sequences.padded` builds them) and returns one score per column [B, T], zero at padding:

- `attention`: the last layer's attention from the last position (mean over heads; per head kept).
- `rollout`: attention rollout over all layers with the residual (Abnar & Zuidema 2020):
  each layer's head-averaged A becomes 0.5 A + 0.5 I, rows renormalised, and the layers are multiplied.
- `norm`: attention weight times the norm of the transformed value vector (Kobayashi et al. 2020), last
  layer: ||sum_h a^h_j f^h(x_j)|| with f^h(x) = (LN1(x) W_V^h + b_V^h) W_O^h; per head a^h_j ||f^h(x_j)||.
- `gradrollout`: gradient-weighted attention rollout (Chefer, Gur & Wolf, ICCV 2021): each layer's weights
  times the gradient of the target's score w.r.t. them, negatives dropped, mean over heads (A_bar); the flow
  starts as the identity (the residual) and each layer adds A_bar @ flow. Target-specific like occlusion, at
  the cost of one backward pass.
- `gradxinput`: gradient of the target item's score w.r.t. each history item embedding, dotted with it.
- `occlusion`: the exact drop of the target's score when each history item is removed from the history
  (the rest keeps its order), all removals in one batched pass.

The three attention-based methods are target-agnostic in SASRec: the weights do not depend on which item
is being explained (every candidate is scored from the same last hidden state), so they say what the
model read, not why it preferred this item over another. `gradrollout`, `gradxinput` and `occlusion` are
target-specific.
Attention-based methods use the weights that multiplied V (`AttentionWeights.applied`: AWRSR's refined
A' or A* when the model refines, the plain softmax otherwise).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqlens.errors import DataError
from seqlens.eval.metrics import exclude

METHODS = ("attention", "rollout", "norm", "gradrollout", "gradxinput", "occlusion")
TARGET_AGNOSTIC = frozenset({"attention", "rollout", "norm"})

#: sequences per forward pass when many perturbed histories are scored (bounds the T x T attention memory)
CHUNK = 512


@dataclass
class Attributions:
    """Per-position attributions of one target item per row, and the target's score on the full history."""

    scores: Tensor  # [B, T], 0 at padding
    target: Tensor  # [B] internal item indices
    target_score: Tensor  # [B] score of the target given the full history
    per_head: Tensor | None = None  # [B, H, T] for the attention-based methods that have heads


def check_method(method: str) -> str:
    if method not in METHODS:
        raise DataError(f"method={method!r} is unknown; choose one of {', '.join(METHODS)}")
    return method


def attribute(
    net: nn.Module, seq: Tensor, method: str, target: Tensor | None = None, exclude_seen: bool = True
) -> Attributions:
    """Attributions of `target` [B] (None or 0: the row's top-scoring item) to every column of `seq` [B, T]."""
    check_method(method)
    if seq.dim() != 2 or seq.shape[1] == 0:
        raise DataError(f"seq must be a [batch, length] tensor of item indices, got shape {tuple(seq.shape)}")
    if not (seq != 0).any(1).all():
        raise DataError("every history must hold at least one item known to the model")
    if method == "gradxinput":
        return _gradxinput(net, seq, target, exclude_seen)
    if method == "gradrollout":
        return _gradrollout(net, seq, target, exclude_seen)
    if method == "occlusion":
        return _occlusion(net, seq, target, exclude_seen)
    with torch.inference_mode():
        with _captured_input(net.blocks[-1].attn) as captured:
            hidden, weights = net(seq, return_attention=True)
        target, target_score = _resolve(net, hidden[:, -1], seq, target, exclude_seen)
        last = weights[-1].applied[:, :, -1, :]  # [B, H, T]: the last query's weights in the last layer
        if method == "attention":
            return Attributions(last.mean(1), target, target_score, last)
        if method == "rollout":
            flow = rollout([w.applied.mean(1) for w in weights])
            return Attributions(flow[:, -1, :], target, target_score)
        per_head, combined = _value_norms(net.blocks[-1].attn, captured[0], last)
        return Attributions(combined, target, target_score, per_head)


def rollout(weights: list[Tensor]) -> Tensor:
    """Attention rollout [B, T, T] from head-averaged per-layer weights [B, T, T], first layer first.

    The residual connection is modelled as half of each token's flow staying in place (0.5 A + 0.5 I,
    rows renormalised); padding rows (all zero) therefore keep their flow to themselves only.
    """
    eye = torch.eye(weights[0].shape[-1], dtype=weights[0].dtype, device=weights[0].device)
    flow = eye.expand_as(weights[0])
    for a in weights:
        mixed = 0.5 * a + 0.5 * eye
        flow = (mixed / mixed.sum(-1, keepdim=True)) @ flow
    return flow


def target_scores(net: nn.Module, last_hidden: Tensor, target: Tensor) -> Tensor:
    """Scores [B] of `target` [B] from the last hidden states, through the network's own scoring."""
    return net.scores(last_hidden).gather(1, target[:, None])[:, 0]


def score_sequences(net: nn.Module, seq: Tensor, target: Tensor, chunk: int = CHUNK) -> Tensor:
    """Scores [N] of `target` [N] after each left-padded sequence [N, T], in chunks (no gradients)."""
    out = torch.empty(len(seq))
    with torch.inference_mode():
        for lo in range(0, len(seq), chunk):
            out[lo : lo + chunk] = target_scores(net, net.last_hidden(seq[lo : lo + chunk]), target[lo : lo + chunk])
    return out


def keep_only(seq: Tensor, keep: Tensor) -> Tensor:
    """Left-padded sequences [N, T] holding only the items where `keep` [N, T] is True, in their order.

    This is how an item is removed from a history: the items before it move one step closer to the
    present (positions are right-aligned), exactly as if the user had never interacted with it.
    """
    keep = keep & (seq != 0)
    order = torch.argsort(keep.to(torch.int8), dim=1, stable=True)  # dropped first, kept in order after
    return torch.where(keep.gather(1, order), seq.gather(1, order), torch.zeros_like(seq))


def _resolve(
    net: nn.Module, last_hidden: Tensor, seq: Tensor, target: Tensor | None, exclude_seen: bool
) -> tuple[Tensor, Tensor]:
    """The target of each row (given, or the top item where 0 or None, history excluded if asked) and its score."""
    scores = net.scores(last_hidden)
    top = (exclude(scores, seq) if exclude_seen else scores).argmax(1)
    if target is None:
        target = top
    elif target.shape != (len(seq),) or (target < 0).any() or (target >= scores.shape[1]).any():
        raise DataError(f"target must hold one item index per row (0 = the top item), got {target.tolist()}")
    else:
        target = torch.where(target > 0, target, top)
    return target, scores.gather(1, target[:, None])[:, 0]


@contextmanager
def _captured_input(module: nn.Module):
    """Collect the first positional input of each call of `module` (here: LN1 of the last block's input)."""
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda m, args, out: captured.append(args[0]))
    try:
        yield captured
    finally:
        handle.remove()


def _value_norms(attn: nn.Module, x: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """Kobayashi et al.'s ||a f(x)||: per head [B, H, T] and for the heads' summed output [B, T].

    f^h(x_j) = v^h_j W_O^h is what position j adds to the output through head h before the weighting;
    the output projection's bias is added once per query and belongs to no position, so it is left out.
    """
    b, t, d = x.shape
    h, dh = attn.heads, attn.head_dim
    v = nn.functional.linear(x, attn.qkv.weight[2 * d :], attn.qkv.bias[2 * d :]).view(b, t, h, dh)
    transformed = torch.einsum("bthk,ehk->bthe", v, attn.proj.weight.view(d, h, dh))  # [B, T, H, D]
    weighted = alpha.permute(0, 2, 1)[..., None] * transformed
    return weighted.norm(dim=-1).permute(0, 2, 1), weighted.sum(2).norm(dim=-1)


def _scored_with_grad(
    net: nn.Module, seq: Tensor, target: Tensor | None, exclude_seen: bool, return_attention: bool = False
) -> tuple[Tensor, Tensor, list | None]:
    """Resolved targets, their scores (still in the autograd graph; call with gradients enabled) and, if
    asked, the attention weights."""
    hidden, weights = net(seq, return_attention=return_attention)
    with torch.no_grad():
        target, _ = _resolve(net, hidden[:, -1].detach(), seq, target, exclude_seen)
    return target, target_scores(net, hidden[:, -1], target), weights


def _gradxinput(net: nn.Module, seq: Tensor, target: Tensor | None, exclude_seen: bool) -> Attributions:
    """Rows are independent in eval mode, so one backward of the summed target scores gives every row's gradient."""
    leaves: list[Tensor] = []

    def as_leaf(module, args, out):  # the embedding output becomes a leaf we can differentiate against
        leaves.append(out.detach().requires_grad_(True))
        return leaves[-1]

    handle = net.item_emb.register_forward_hook(as_leaf)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            target, score, _ = _scored_with_grad(net, seq, target, exclude_seen)
            (grad,) = torch.autograd.grad(score.sum(), leaves[0])
    finally:
        handle.remove()
    scores = (grad * leaves[0]).sum(-1).detach() * (seq != 0)
    return Attributions(scores, target, score.detach())


def _gradrollout(net: nn.Module, seq: Tensor, target: Tensor | None, exclude_seen: bool) -> Attributions:
    """Chefer et al.'s relevance from the last position: flow = I, then flow += mean_h (dS/dA * A)^+ @ flow."""
    with torch.inference_mode(False), torch.enable_grad():
        target, score, weights = _scored_with_grad(net, seq, target, exclude_seen, return_attention=True)
        grads = torch.autograd.grad(score.sum(), [w.applied for w in weights])
    eye = torch.eye(seq.shape[1], dtype=score.dtype)
    flow = eye.expand(len(seq), -1, -1)
    for w, g in zip(weights, grads):
        flow = flow + (g * w.applied).clamp(min=0).mean(1).detach() @ flow
    return Attributions(flow[:, -1, :] * (seq != 0), target, score.detach())


def _occlusion(net: nn.Module, seq: Tensor, target: Tensor | None, exclude_seen: bool) -> Attributions:
    """score(full history) - score(history without item j), for every real position j."""
    with torch.inference_mode():
        target, full = _resolve(net, net.last_hidden(seq), seq, target, exclude_seen)
    row, col = (seq != 0).nonzero(as_tuple=True)  # one occluded copy per real position
    keep = torch.arange(seq.shape[1])[None, :] != col[:, None]
    without = score_sequences(net, keep_only(seq[row], keep), target[row])
    scores = torch.zeros(seq.shape, dtype=full.dtype)
    scores[row, col] = full[row] - without
    return Attributions(scores, target, full)
