"""Eight ways to attribute one item's score to the history positions, all batched over users.

Every method takes left-padded internal item indices `seq` [B, T] (padding 0, most recent item in the
last column, as `Sequences.padded` builds them) and the item to explain per row, `target` [B], and returns
one score per column [B, T], zero at padding. Which item is explained is the caller's decision
(`seqlens.explain.explain_batch` explains what `recommend` shows).

Signed methods say how much each item raised (> 0) or lowered (< 0) the item's score:
- `masking`: the exact score drop when the item is hidden in place (it is neither attended to nor read,
  every other item keeps its position). The most recent item is the position the model reads its
  prediction from, so it cannot be hidden that way; neither alternative is clean alone. Removing it moves
  every older item one step closer to the present (a model that reads distances, "the item k steps back",
  then credits the latest item with what an older one did); hiding only its content (the average item's
  embedding in its place) leaves the query at that position without its item. It is credited with the
  smaller of the two drops: a reason only if both say it raised the score. Chosen on the tuning data
  (ML-100K validation, the families-9 test bed), reported elsewhere. One pass over all positions that
  reuses what hiding leaves unchanged (`SASRecNet.masked_last_hidden`).
- `occlusion`: the exact score drop when the item is removed from the history (the items before it move one
  step closer to the present); all removals in one pass that reuses what a removal leaves unchanged
  (`SASRecNet.removed_last_hidden`).
- `intgrad`: integrated gradients (Sundararajan et al. 2017) of the score along the path that scales every
  item embedding from 0 to its value (`INTGRAD_STEPS` midpoints); they sum to score(x) - score(no items).
- `gradxinput`: gradient of the score w.r.t. each item embedding, dotted with it (the first-order term).

Unsigned views show where the model looked, not what an item did to the score:
- `gradrollout`: gradient-weighted attention rollout (Chefer, Gur & Wolf, ICCV 2021): each layer's weights
  times the gradient of the score w.r.t. them, negatives dropped, mean over heads, rolled out from the
  identity (the residual). Target-specific, but positive by construction.
- `attention`: the last layer's attention from the last position (mean over heads; per head kept).
- `rollout`: attention rollout over all layers with the residual (Abnar & Zuidema 2020).
- `norm`: attention weight times the norm of the transformed value vector (Kobayashi et al. 2020), last layer.
The last three are target-agnostic in SASRec: every candidate is scored from the same last hidden state.
Attention-based methods use the weights that multiplied V (`AttentionWeights.applied`: AWRSR's refined
A' or A* when the model refines, the plain softmax otherwise).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from seqlens.errors import DataError
from seqlens.explain.methods import METHODS as METHODS  # declared in methods.py (torch-free), importable here
from seqlens.explain.methods import SIGNED as SIGNED
from seqlens.explain.methods import TARGET_AGNOSTIC as TARGET_AGNOSTIC
from seqlens.nn.attention import CausalSelfAttention
from seqlens.nn.masking import Masked, time_kwargs
from seqlens.nn.next_item import NextItemNet
from seqlens.nn.sasrec import SASRecNet
from seqlens.train.memory import keep_freed_memory

#: what a method needs of the network besides scoring: attention layers, or in-place masking
NEEDS = {"gradrollout": "blocks", "attention": "blocks", "rollout": "blocks", "norm": "blocks",
         "masking": "masked_last_hidden"}  # fmt: skip

#: masking's rules for the most recent item, which cannot be hidden in place: the smaller of the drops with
#: its content hidden and with it removed (the default, chosen on tuning data), or either alone
LATEST_RULES = ("min", "content", "removal")
#: methods that build tables of T^2 / 2 rows (about 5 MB each at T=200): they run faster when freed memory is
#: kept for reuse (`keep_freed_memory`: without it, every call page-faults its tables in again, measured
#: at a third of masking's time at L=200)
LARGE_TABLES = frozenset({"masking", "occlusion", "intgrad"})
#: sequences per forward pass when many perturbed histories are scored (bounds the T x T attention memory)
CHUNK = 512
#: floats in the prefix sums of one exact-occlusion pass (rows x T x T x D): bounds its memory at 64 MB
PREFIX_SUMS = 2**24
#: midpoints of the integrated-gradients path (the error of the sum against its exact value shrinks as 1/steps^2)
INTGRAD_STEPS = 16


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


def supports(net: NextItemNet, method: str) -> bool:
    """Whether `net` has what `method` needs (attention layers for the attention views, in-place masking)."""
    return method not in NEEDS or hasattr(net, NEEDS[method])


def attribute(
    net: NextItemNet,
    seq: Tensor,
    method: str,
    target: Tensor,
    latest: str = "min",
    masked: Masked | None = None,
    times: Tensor | None = None,
) -> Attributions:
    """Attributions of `target` [B] (internal item indices) to every column of `seq` [B, T] (timestamps `times`
    [B, T], for a network that reads them: `NextItemModel.padded_inputs` gives both).

    `latest` is masking's rule for the most recent item (see `LATEST_RULES`); other methods ignore it.
    `masked` is masking's pass over `seq` (`masked_states`) when the caller has made it already.
    """
    check_method(method)
    if latest not in LATEST_RULES:
        raise DataError(f"latest={latest!r} is unknown; choose one of {', '.join(LATEST_RULES)}")
    if seq.dim() != 2 or seq.shape[1] == 0:
        raise DataError(f"seq must be a [batch, length] tensor of item indices, got shape {tuple(seq.shape)}")
    if not (seq != 0).any(1).all():
        raise DataError("every history must hold at least one item known to the model")
    n_items = net.item_emb.num_embeddings
    if target.shape != (len(seq),) or (target < 1).any() or (target >= n_items).any():
        raise DataError(f"target must hold one known item index per row, got {target.tolist()}")
    if not supports(net, method):
        raise DataError(f"method {method!r} needs {NEEDS[method]!r}, which {type(net).__name__} does not have")
    if method in LARGE_TABLES:
        keep_freed_memory()
    if method == "masking":
        return _masking(net, seq, target, latest, masked, times)
    if method in _SIGNED_METHODS:
        return _SIGNED_METHODS[method](net, seq, target, times)
    sasrec = cast(SASRecNet, net)  # supports() checked: an attention network from here on
    if method == "gradrollout":
        return _gradrollout(sasrec, seq, target, times)
    last_attention = cast(CausalSelfAttention, sasrec.blocks[-1].attn)
    with torch.inference_mode():
        with _captured_input(last_attention) as captured:
            hidden, weights = net(seq, return_attention=True, **time_kwargs(times))
        score = net.score_of(hidden[:, -1], target)
        last = weights[-1].applied[:, :, -1, :]  # [B, H, T]: the last query's weights in the last layer
        if method == "attention":
            return Attributions(last.mean(1), target, score, last)
        if method == "rollout":
            flow = rollout([w.applied.mean(1) for w in weights])
            return Attributions(flow[:, -1, :], target, score)
        per_head, combined = _value_norms(last_attention, captured[0], last)
        return Attributions(combined, target, score, per_head)


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


def masked_states(net: NextItemNet, seq: Tensor, times: Tensor | None = None) -> Masked:
    """Masking's pass over `seq` [B, T], which does not depend on the item explained; its `states[:, -1]` is what
    the next item is scored from."""
    with torch.inference_mode():
        return cast(SASRecNet, net).masked_last_hidden(seq, times)


def _masking(
    net: NextItemNet,
    seq: Tensor,
    target: Tensor,
    latest: str = "min",
    masked: Masked | None = None,
    times: Tensor | None = None,
) -> Attributions:
    """score(history) - score(history with item j hidden in place); for the most recent item, by `latest`:
    the smaller of the drops when its content is hidden and when it is removed ("min"), or one of them."""
    real = seq != 0
    with torch.inference_mode():
        hidden, states = masked or masked_states(net, seq, times)  # [B, T, D] each
        full = net.score_of(states[:, -1], target)  # [B]
        drops = full[:, None] - net.score_of(hidden, target[:, None].expand_as(seq))  # [B, T]
        # without the latest item: when nothing reads absolute positions, that is the state one column earlier,
        # already computed (attention is causal); a window of one item leaves nothing, a zero state
        if seq.shape[1] == 1:
            before = torch.zeros_like(states[:, -1])
        elif net.shift_invariant:  # (the intervals before the latest item do not change either)
            before = states[:, -2]
        else:
            before = net.last_hidden(seq[:, :-1], None if times is None else times[:, :-1])
        removed = full - net.score_of(before, target)
        if latest == "min":
            drops[:, -1] = torch.minimum(drops[:, -1], removed)
        elif latest == "removal":
            drops[:, -1] = removed
    return Attributions(drops * real, target, full)


def _occlusion(net: NextItemNet, seq: Tensor, target: Tensor, times: Tensor | None = None) -> Attributions:
    """score(full history) - score(history without item j), for every real position j.

    `removed_last_hidden` computes all removals (SASRec in one pass that reuses what a removal leaves
    unchanged, other networks one pass per position), a few rows at a time to bound its T x T x D tables.
    """
    real = seq != 0
    rows = max(1, PREFIX_SUMS // (seq.shape[1] ** 2 * net.item_emb.embedding_dim))
    each = target[:, None].expand_as(seq)  # the target, once per removed position
    with torch.inference_mode():
        full = net.score_of(net.last_hidden(seq, times), target)
        without = torch.cat(
            [net.score_of(net.removed_last_hidden(seq[lo : lo + rows], None if times is None else times[lo : lo + rows]),
                          each[lo : lo + rows])
             for lo in range(0, len(seq), rows)]
        )  # fmt: skip
    return Attributions((full[:, None] - without) * real, target, full)


@contextmanager
def _embedding_leaf(net: NextItemNet, scale: Tensor | None = None):
    """Make the history's item embeddings a leaf to differentiate against (optionally scaled per row [N, 1, 1]).

    Only the first lookup is the history's; later ones (the scored item's embedding) are left alone.
    """
    leaves: list[Tensor] = []

    def as_leaf(module, args, out):
        if leaves:
            return None
        leaves.append(out.detach().requires_grad_(True))
        return leaves[-1] if scale is None else leaves[-1] * scale

    handle = net.item_emb.register_forward_hook(as_leaf)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield leaves
    finally:
        handle.remove()


def _gradxinput(net: NextItemNet, seq: Tensor, target: Tensor, times: Tensor | None = None) -> Attributions:
    """Rows are independent in eval mode, so one backward of the summed target scores gives every row's gradient."""
    with _embedding_leaf(net) as leaves:
        score = net.score_of(net.last_hidden(seq, times), target)
        (grad,) = torch.autograd.grad(score.sum(), leaves[0])
    scores = (grad * leaves[0]).sum(-1).detach() * (seq != 0)
    return Attributions(scores, target, score.detach())


def _intgrad(
    net: NextItemNet, seq: Tensor, target: Tensor, times: Tensor | None = None, steps: int = INTGRAD_STEPS
) -> Attributions:
    """Integrated gradients: the mean gradient along embeddings scaled by alpha in (0, 1], times the embedding."""
    b, t = seq.shape
    alphas = (torch.arange(steps) + 0.5) / steps  # midpoints of the path
    scale = alphas.repeat(b)[:, None, None]  # [B * steps, 1, 1]
    with _embedding_leaf(net, scale) as leaves:
        path = net.score_of(
            net.last_hidden(
                seq.repeat_interleave(steps, 0), None if times is None else times.repeat_interleave(steps, 0)
            ),
            target.repeat_interleave(steps),
        )
        (grad,) = torch.autograd.grad(path.sum(), leaves[0])
    mean_grad = (grad / scale).view(b, steps, t, -1).mean(1)  # [B, T, D]: d score / d (alpha x) along the path
    embedding = leaves[0].view(b, steps, t, -1)[:, 0]  # the unscaled embeddings (the same at every step)
    scores = (mean_grad * embedding).sum(-1).detach() * (seq != 0)
    with torch.inference_mode():
        full = net.score_of(net.last_hidden(seq, times), target)
    return Attributions(scores, target, full)


#: the signed methods besides masking (which also takes its rule for the latest item)
_SIGNED_METHODS = {"occlusion": _occlusion, "intgrad": _intgrad, "gradxinput": _gradxinput}


@contextmanager
def _captured_input(module: nn.Module):
    """Collect the first positional input of each call of `module` (here: LN1 of the last block's input)."""
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda m, args, out: captured.append(args[0]))
    try:
        yield captured
    finally:
        handle.remove()


def _value_norms(attn: CausalSelfAttention, x: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """Kobayashi et al.'s ||a f(x)||: per head [B, H, T] and for the heads' summed output [B, T].

    f^h(x_j) is what position j adds to the output through head h before the weighting (`value_outputs`).
    """
    transformed = attn.value_outputs(x)  # [B, T, H, D]
    weighted = alpha.permute(0, 2, 1)[..., None] * transformed
    return weighted.norm(dim=-1).permute(0, 2, 1), weighted.sum(2).norm(dim=-1)


def _gradrollout(net: SASRecNet, seq: Tensor, target: Tensor, times: Tensor | None = None) -> Attributions:
    """Chefer et al.'s relevance from the last position: flow = I, then flow += mean_h (dS/dA * A)^+ @ flow."""
    with torch.inference_mode(False), torch.enable_grad():
        hidden, weights = net(seq, return_attention=True, **time_kwargs(times))
        score = net.score_of(hidden[:, -1], target)
        grads = torch.autograd.grad(score.sum(), [w.applied for w in weights])
    eye = torch.eye(seq.shape[1], dtype=score.dtype)
    flow = eye.expand(len(seq), -1, -1)
    for w, g in zip(weights, grads):
        flow = flow + (g * w.applied).clamp(min=0).mean(1).detach() @ flow
    return Attributions(flow[:, -1, :] * (seq != 0), target, score.detach())
