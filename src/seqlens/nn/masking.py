"""Every history position hidden in turn, exactly, in one pass that reuses what hiding leaves unchanged.

Hiding position j in place (the item is neither attended to nor read; every other item keeps its position)
changes nothing before j, because attention is causal and no position moves. So instead of running the
network once per position (T passes of T positions: ~200 ms for T=200 on one CPU thread), this module:

1. runs the network once and keeps each layer's input, keys and values;
2. in the first layer, where the inputs other than j are unchanged, gets every query i > j exactly by taking
   j's term out of the softmax and renormalising: o_i(-j) = (o_i - a_ij v_j) / (1 - a_ij), per head;
3. in the middle layers (models of three or more), recomputes the rows after j with a full block;
4. in the last layer, computes only the last query, attending to the unchanged keys before j and the
   recomputed ones after it.

Only (j, i) pairs with i > j are carried from layer to layer: T(T-1)/2 rows instead of T^2, about 8x less
work than T full passes for a two-layer model. The result equals `net(seq, keep=...)` run once per hidden
position (the tests compare them). The shortcut needs the plain softmax weights in the first and last
layer; with AWRSR refinement there, every hidden position is run as its own pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from seqlens.nn.attention import attention_mask, masked_softmax

if TYPE_CHECKING:
    from seqlens.nn.sasrec import SASRecNet

#: hidden positions evaluated per chunk of the generic path (bounds its T x T attention memory)
CHUNK = 512


def masked_last_hidden(net: SASRecNet, seq: Tensor) -> Tensor:
    """[B, T, D]: column j is the last hidden state of `seq` [B, T] with position j hidden in place.

    Columns at padding are zero, and so is the last column (hiding the position the model reads from
    leaves nothing to read); callers wanting "without the last item" run `net.last_hidden(seq[:, :-1])`.
    """
    cfg = net.cfg
    if net.training:
        raise RuntimeError("masked_last_hidden needs the network in eval mode (call net.eval())")
    if cfg.refines(0) or cfg.refines(cfg.layers - 1):
        return _one_pass_each(net, seq)
    return _reusing_prefix(net, seq)


def _one_pass_each(net: SASRecNet, seq: Tensor) -> Tensor:
    """The definition: one forward pass per (row, hidden position), in chunks."""
    b, t = seq.shape
    out = torch.zeros(b, t, net.cfg.dim)
    row, col = (seq[:, :-1] != 0).nonzero(as_tuple=True)
    for lo in range(0, len(row), CHUNK):
        r, c = row[lo : lo + CHUNK], col[lo : lo + CHUNK]
        keep = torch.arange(t)[None, :] != c[:, None]  # [N, T]
        hidden, _ = net(seq[r], keep=keep)
        out[r, c] = hidden[:, -1]
    return out


def _reusing_prefix(net: SASRecNet, seq: Tensor) -> Tensor:
    """The shortcut; pair rows live in flat [B * P, ...] tables so that gathers are cheap row look-ups."""
    b, t = seq.shape
    blocks = list(net.blocks)
    keep = seq != 0  # [B, T]
    j_of, i_of = torch.triu_indices(t, t, offset=1)  # the P = T(T-1)/2 pairs (hidden j, later row i)
    if len(blocks) == 1:  # the first layer is also the last: only the last row is needed
        j_of, i_of = j_of[i_of == t - 1], i_of[i_of == t - 1]
    offset = torch.arange(b)[:, None]
    row_i, row_j = (offset * t + i_of).ravel(), (offset * t + j_of).ravel()  # rows of [B * T, ...] tables
    pair_ji = (offset * t * t + j_of * t + i_of).ravel()  # rows of [B * T(j) * T(i), ...] tables
    x = net.embed(seq) * keep[..., None]  # [B, T, D]: the first layer's input, the same for every j != row

    # first layer: each later row's attention output without j's term, renormalised. The output projection
    # is linear, so it is applied to the T outputs and values once, not to every pair: per head h,
    # W o_i(-j) = W o_i + c (W o_i - W v_j) with c = a_ij / (1 - a_ij)
    first = blocks[0]
    attn = first.attn
    q, k, v = attn.project(first.ln1(x))  # [B, H, T, dh]
    a = masked_softmax(attn.logits(q, k), attention_mask(keep), keep)  # [B, H, T, T]
    o = a @ v  # [B, H, T, dh]
    w_o = attn.proj.weight.view(-1, attn.heads, attn.head_dim)  # [D, H, dh]
    p_o, p_v = (torch.einsum("nhk,dhk->nhd", _rows(z), w_o) for z in (o, v))  # [B * T, H, D]
    y = x + attn.proj(o.transpose(1, 2).flatten(2))  # [B, T, D]: the unhidden residual stream after attention
    a_ij = a.permute(0, 2, 3, 1).reshape(b * t * t, -1).index_select(0, (offset * t * t + i_of * t + j_of).ravel())
    c = (a_ij / (1 - a_ij).clamp(min=1e-12))[..., None]  # [B * P, H, 1]
    change = (c * (p_o.index_select(0, row_i) - p_v.index_select(0, row_j))).sum(1)  # [B * P, D]
    x_pairs = first.feed_forward(y.view(b * t, -1).index_select(0, row_i) + change)  # [B * P, D]
    x = first.feed_forward(y) * keep[..., None]  # the unhidden sequence, as the next layer reads it

    for block in blocks[1:-1]:  # middle layers: rows after j recomputed in full
        dense = x[:, None].repeat(1, t, 1, 1).view(b * t * t, -1)  # [B * T(j) * T, D]: one sequence per j
        dense[pair_ji] = x_pairs
        keep_j = keep[:, None, :] & ~torch.eye(t, dtype=torch.bool)  # [B, T(j), T]: j hidden
        dense = block(dense.view(b * t, t, -1) * keep_j.view(b * t, t, 1), keep_j.view(b * t, t))[0]
        x_pairs = dense.reshape(b * t * t, -1).index_select(0, pair_ji)
        x = block(x, keep)[0]

    if len(blocks) == 1:
        last_x = x_pairs  # [B * (T-1), D]: row T-1 of each j < T-1
    else:  # last layer: the last query of each j over unchanged keys before j and recomputed ones after
        attn, h_pairs = blocks[-1].attn, blocks[-1].ln1(x_pairs)  # the last layer's attention from here on
        _, k, v = attn.project(blocks[-1].ln1(x))  # [B, H, T, dh]: keys and values of the unhidden rows
        k_p, v_p = attn.keys_values_at(h_pairs, i_of.repeat(b))  # [B * P, H, dh]: the recomputed rows
        last = (offset * len(i_of) + torch.flatten(torch.nonzero(i_of == t - 1))).ravel()  # pair rows (j, T-1)
        q = attn.query_at(h_pairs.index_select(0, last), torch.full((len(last),), t - 1))  # [B * (T-1), H, dh]
        q_j = (offset * (t - 1) + j_of).ravel()  # each pair's query row
        pair_jt = (offset * (t - 1) * t + j_of * t + i_of).ravel()  # rows of [B * (T-1) * T, H] tables
        scores = attn.logits(q.view(b, t - 1, *q.shape[1:]).transpose(1, 2), k)  # [B, H, T-1, T]: unhidden keys
        scores = scores.permute(0, 2, 3, 1).contiguous()  # [B, T-1, T, H]
        after = attn.logits(q.index_select(0, q_j)[:, :, None], k_p[:, :, None])[..., 0, 0]  # [B * P, H]
        scores.view(-1, scores.shape[-1]).index_copy_(0, pair_jt, after)
        hidden_j = torch.eye(t, dtype=torch.bool)[:-1]  # [T-1, T]: key j hidden for query set j
        weights = scores.masked_fill((hidden_j | ~keep[:, None, :])[..., None], float("-inf")).softmax(2)
        before = weights.masked_fill(torch.ones(t - 1, t, dtype=torch.bool).triu()[:, :, None], 0.0)
        out = _rows(before.permute(0, 3, 1, 2) @ v)  # [B * (T-1), H, dh]: keys before j
        w_after = weights.view(-1, weights.shape[-1]).index_select(0, pair_jt)[..., None]  # [B * P, H, 1]
        out = out.index_add(0, q_j, w_after * v_p)  # plus the keys after j
        last_x = blocks[-1].after_attention(x_pairs.index_select(0, last), attn.proj(out.flatten(1)))

    hidden = torch.zeros(b, t, net.cfg.dim)
    hidden[:, :-1] = net.ln_f(last_x).view(b, t - 1, -1) * keep[:, :-1, None]  # hiding padding: left at zero
    return hidden


def _rows(z: Tensor) -> Tensor:
    """[B, H, T, dh] -> [B * T, H, dh]: one row per (sequence, position), for row look-ups."""
    return z.transpose(1, 2).reshape(-1, *z.shape[1:2], z.shape[-1])
