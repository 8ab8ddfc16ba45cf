"""Every history item hidden, or removed, in turn: exactly, in one pass that reuses what the change leaves alone.

Two ways to take item j out of a left-padded history (most recent item in the last column):
- hidden in place (`masked_last_hidden`): j is neither attended to nor read; every other item keeps its
  position. Nothing before j changes (attention is causal and no position moves).
- removed (`removed_last_hidden`): the history without j, right-aligned as always, so the items before j
  move one column closer to the present. Those items then hold exactly the states of the history shifted
  one column right (its last item dropped), computed once for every j, since attention is causal.

Either way the rows after j must be recomputed, the rest is known. Instead of running the network once per
position (T passes of T positions: about 250 ms for T=200 on one CPU thread, against about 27 ms here), this module:

1. runs the network once (removal: twice, on the history and on the shifted one), keeping each layer's input;
2. in the first layer, gets every row i > j's attention output from what is known: when hiding, by taking
   j's term out of the softmax and renormalising, o_i(-j) = (o_i - a_ij v_j) / (1 - a_ij), per head; when
   removing, from the full row's softmax sums and a prefix sum (up to j) of what swapping in the shifted
   keys changes;
3. in the middle layers (models of three or more), recomputes the rows after j with a full block;
4. in the last layer, computes only the last query, attending to the known keys before j and the
   recomputed ones after it.

Only (j, i) pairs with i > j are carried from layer to layer: T(T-1)/2 rows instead of T^2, about 8x less
work than T full passes for a two-layer model. The results equal one forward pass per position (the tests
compare them). The shortcut needs the plain softmax weights in the first and last layer (and, for removal,
positions counted from the end, or none); otherwise every position is run as its own pass.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from seqlens.nn.attention import CausalSelfAttention, attention_mask, masked_softmax
from seqlens.nn.config import SASRecConfig

#: perturbed sequences evaluated per chunk of the one-pass-each path (bounds its T x T attention memory)
CHUNK = 512


# The networks call this module (`SASRecNet.masked_last_hidden`, `NextItemNet.removed_last_hidden`), so it does not
# import them back: what it reads of them is spelled out here, and type checkers match the networks against it.
class _Net(Protocol):
    """Any next-item network (`NextItemNet`), as `one_pass_each` reads it."""

    training: bool

    @property
    def hidden_dim(self) -> int: ...

    def __call__(self, seq: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Any]: ...


class _Block(Protocol):
    """A SASRec block (`sasrec.Block`), as the shortcut reads it."""

    attn: CausalSelfAttention
    ln1: nn.LayerNorm
    ln2: nn.LayerNorm
    ffn: nn.Sequential

    def __call__(self, x: Tensor, keep: Tensor) -> tuple[Tensor, Any]: ...

    def after_attention(self, x: Tensor, a: Tensor) -> Tensor: ...


class _SASRecNet(_Net, Protocol):
    """SASRec's network (`sasrec.SASRecNet`), as the shortcut reads it: its config, embedding, blocks, final norm."""

    cfg: SASRecConfig
    blocks: nn.ModuleList
    ln_f: nn.LayerNorm

    def embed(self, seq: Tensor, blank: Tensor | None = None) -> Tensor: ...


def masked_last_hidden(net: _Net, seq: Tensor) -> Tensor:
    """[B, T, D]: column j is the last hidden state of `seq` [B, T] with position j hidden in place.

    Hiding the position the model reads from would leave nothing to read, so the last column hides only the
    latest item's content: the average item embedding stands in for its own, its position stays (removing
    it instead would move every older item one step closer to the present, which changes what a model of
    distances reads).
    Columns at padding are zero.
    """
    out = (
        _reusing_prefix(cast("_SASRecNet", net), seq, remove=False)
        if _shortcut_applies(net, remove=False)
        else one_pass_each(net, seq, remove=False)
    )
    blank = torch.zeros_like(seq, dtype=torch.bool)
    blank[:, -1] = True
    out[:, -1] = net(seq, blank=blank)[0][:, -1]
    return out


def removed_last_hidden(net: _SASRecNet, seq: Tensor) -> Tensor:
    """[B, T, D]: column j is the last hidden state of `seq` [B, T] with item j removed (the items before it
    one column closer to the present, as if the user had never interacted with it). Zero at padding."""
    if _shortcut_applies(net, remove=True):
        return _reusing_prefix(net, seq, remove=True)
    return one_pass_each(net, seq, remove=True)


def keep_only(seq: Tensor, keep: Tensor) -> Tensor:
    """Left-padded sequences [N, T] holding only the items where `keep` [N, T] is True, in their order.

    This is how an item is removed from a history: the items before it move one step closer to the
    present (positions are right-aligned), exactly as if the user had never interacted with it.
    """
    keep = keep & (seq != 0)
    order = torch.argsort(keep.to(torch.int8), dim=1, stable=True)  # dropped first, kept in order after
    return torch.where(keep.gather(1, order), seq.gather(1, order), torch.zeros_like(seq))


def _shortcut_applies(net: _Net, remove: bool) -> bool:
    if net.training:
        raise RuntimeError("masking and removal need the network in eval mode (call net.eval())")
    cfg = getattr(net, "cfg", None)
    if not isinstance(cfg, SASRecConfig):  # the shortcut is written for SASRec's blocks
        return False
    plain = not (cfg.refines(0) or cfg.refines(cfg.layers - 1))
    return plain and not (remove and cfg.positions == "from_start")  # from the start, later items would move


def one_pass_each(net: _Net, seq: Tensor, remove: bool) -> Tensor:
    """The definition, for any next-item network: one forward pass per (row, position), in chunks."""
    b, t = seq.shape
    out = torch.zeros(b, t, net.hidden_dim)
    real = seq != 0
    row, col = (real if remove else real[:, :-1]).nonzero(as_tuple=True)
    for lo in range(0, len(row), CHUNK):
        r, c = row[lo : lo + CHUNK], col[lo : lo + CHUNK]
        keep = torch.arange(t)[None, :] != c[:, None]  # [N, T]
        hidden, _ = net(keep_only(seq[r], keep)) if remove else net(seq[r], keep=keep)
        out[r, c] = hidden[:, -1]
    return out


def _reusing_prefix(net: _SASRecNet, seq: Tensor, remove: bool) -> Tensor:
    """The shortcut; pair rows live in flat [B * P, ...] tables so that gathers are cheap row look-ups.

    `known` is what the rows before j attend to or read: the unchanged sequence when hiding, the shifted one
    when removing (where column j holds the item before j, so `through` = 1 includes it).
    """
    b, t = seq.shape
    if t == 1:  # no pairs: hiding or removing the one item leaves nothing to read
        return torch.zeros(b, 1, net.cfg.dim)
    blocks = cast("list[_Block]", list(net.blocks))
    keep = seq != 0  # [B, T]
    j_of, i_of = torch.triu_indices(t, t, offset=1)  # the P = T(T-1)/2 pairs (hidden j, later row i)
    if len(blocks) == 1:  # the first layer is also the last: only the last row is needed
        j_of, i_of = j_of[i_of == t - 1], i_of[i_of == t - 1]
    offset = torch.arange(b)[:, None]
    pair_ji = (offset * t * t + j_of * t + i_of).ravel()  # rows of [B * T(j) * T(i), ...] tables
    x = net.embed(seq) * keep[..., None]  # [B, T, D]: the first layer's input
    if remove:
        shifted = torch.cat((torch.zeros_like(seq[:, :1]), seq[:, :-1]), 1)  # every item one column later
        known_keep = shifted != 0
        known = net.embed(shifted) * known_keep[..., None]
        x_pairs = _first_layer_removed(blocks[0], x, known, keep, known_keep, j_of, i_of)
    else:
        known_keep = keep
        x_pairs = _first_layer_hidden(blocks[0], x, keep, j_of, i_of)
    through = 1 if remove else 0  # the known keys of pair j: columns < j + through

    x = blocks[0](x, keep)[0]  # the unchanged sequence, as the next layer reads it
    known = blocks[0](known, known_keep)[0] if remove else x
    for block in blocks[1:-1]:  # middle layers: rows after j recomputed in full
        before = torch.arange(t)[None, :] < torch.arange(t)[:, None] + through  # [T(j), T]: known columns
        dense = torch.where(before[None, :, :, None], known[:, None], x[:, None]).reshape(b * t * t, -1)
        dense[pair_ji] = x_pairs  # [B * T(j) * T, D]: one sequence per j
        keep_j = torch.where(before, known_keep[:, None, :], keep[:, None, :] & ~torch.eye(t, dtype=torch.bool))
        dense = block(dense.view(b * t, t, -1) * keep_j.reshape(b * t, t, 1), keep_j.reshape(b * t, t))[0]
        x_pairs = dense.reshape(b * t * t, -1).index_select(0, pair_ji)
        x = block(x, keep)[0]
        known = block(known, known_keep)[0] if remove else x

    if len(blocks) == 1:
        last_x = x_pairs  # [B * (T-1), D]: row T-1 of each j < T-1
    else:  # last layer: the last query of each j over the known keys before j and recomputed ones after
        attn, h_pairs = blocks[-1].attn, blocks[-1].ln1(x_pairs)  # the last layer's attention from here on
        _, k, v = attn.project(blocks[-1].ln1(known))  # [B, H, T, dh]: keys and values of the known rows
        k_p = attn.keys_at(h_pairs, i_of.repeat(b))  # [B * P, H, dh]: the recomputed rows
        last = (offset * len(i_of) + torch.flatten(torch.nonzero(i_of == t - 1))).ravel()  # pair rows (j, T-1)
        q = attn.query_at(h_pairs.index_select(0, last), torch.full((len(last),), t - 1))  # [B * (T-1), H, dh]
        q_j = (offset * (t - 1) + j_of).ravel()  # each pair's query row
        pair_jt = (offset * (t - 1) * t + j_of * t + i_of).ravel()  # rows of [B * (T-1) * T, H] tables
        scores = attn.logits(q.view(b, t - 1, *q.shape[1:]).transpose(1, 2), k)  # [B, H, T-1, T]: known keys
        scores = scores.permute(0, 2, 3, 1).contiguous()  # [B, T-1, T, H]
        after = attn.logits(q.index_select(0, q_j)[:, :, None], k_p[:, :, None])[..., 0, 0]  # [B * P, H]
        scores.view(-1, scores.shape[-1]).index_copy_(0, pair_jt, after)
        columns, rows = torch.arange(t)[None, :], torch.arange(t - 1)[:, None]
        known_part = columns < rows + through  # [T-1, T]
        allowed = torch.where(known_part, known_keep[:, None, :], (columns > rows) & keep[:, None, :])
        weights = scores.masked_fill(~allowed[..., None], float("-inf")).softmax(2)
        out = _rows((weights * known_part[:, :, None]).permute(0, 3, 1, 2) @ v)  # [B * (T-1), H, dh]: known keys
        w_after = weights.view(-1, weights.shape[-1]).index_select(0, pair_jt)[..., None]  # [B * P, H, 1]
        # plus the keys after j: their values through the mix of their inputs (one projection per query)
        mixed = torch.zeros(len(out), attn.heads, h_pairs.shape[-1]).index_add_(0, q_j, w_after * h_pairs[:, None])
        mass = torch.zeros(len(out), attn.heads).index_add_(0, q_j, w_after[..., 0])  # [B * (T-1), H]
        out = out + attn.values_of_mix(mixed, mass)
        last_x = blocks[-1].after_attention(x_pairs.index_select(0, last), attn.proj(out.flatten(1)))

    hidden = torch.zeros(b, t, net.cfg.dim)
    hidden[:, :-1] = net.ln_f(last_x).view(b, t - 1, -1) * keep[:, :-1, None]  # padding columns: left at zero
    if remove:  # the latest item removed: the shifted sequence's last row
        final = known if len(blocks) == 1 else blocks[-1](known, known_keep)[0]
        hidden[:, -1] = net.ln_f(final[:, -1]) * keep[:, -1:]
    return hidden


def _first_layer_hidden(first: _Block, x: Tensor, keep: Tensor, j_of: Tensor, i_of: Tensor) -> Tensor:
    """[B * P, D]: the first block's output at row i with position j hidden, for every pair (j, i).

    Row i's attention output without j's term, renormalised. The output projection is linear, so it is
    applied to the T outputs and values once, not to every pair: per head h,
    W o_i(-j) = W o_i + c (W o_i - W v_j) with c = a_ij / (1 - a_ij).
    """
    b, t, _ = x.shape
    offset = torch.arange(b)[:, None]
    attn = first.attn
    q, k, v = attn.project(first.ln1(x))  # [B, H, T, dh]
    a = masked_softmax(attn.logits(q, k), attention_mask(keep), keep)  # [B, H, T, T]
    o = a @ v  # [B, H, T, dh]
    w_o = attn.proj.weight.view(-1, attn.heads, attn.head_dim)  # [D, H, dh]
    p_o, p_v = (torch.einsum("nhk,dhk->nhd", _rows(z), w_o) for z in (o, v))  # [B * T, H, D]
    y = x + attn.proj(o.transpose(1, 2).flatten(2))  # [B, T, D]: the unchanged residual stream after attention
    a_ij = a.permute(0, 2, 3, 1).reshape(b * t * t, -1).index_select(0, (offset * t * t + i_of * t + j_of).ravel())
    c = (a_ij / (1 - a_ij).clamp(min=1e-12))[..., None]  # [B * P, H, 1]
    row_i, row_j = (offset * t + i_of).ravel(), (offset * t + j_of).ravel()
    # in place where a fresh pair-sized tensor would do: these tables are the bulk of the work
    change = p_o.index_select(0, row_i).sub_(p_v.index_select(0, row_j)).mul_(c)  # [B * P, H, D]
    z = y.view(b * t, -1).index_select(0, row_i).add_(change.sum(1) if attn.heads > 1 else change[:, 0])
    return z.add_(first.ffn(first.ln2(z)))  # the feed-forward's residual (dropout is off in eval mode)


def _first_layer_removed(
    first: _Block, x: Tensor, known: Tensor, keep: Tensor, known_keep: Tensor, j_of: Tensor, i_of: Tensor
) -> Tensor:
    """[B * P, D]: the first block's output at row i with item j removed, for every pair (j, i).

    Row i attends to the shifted sequence's keys in columns <= j and the original keys in columns j+1..i, so
    its softmax numerator is the full row's, sum_m e^(q k_m) v_m, plus the prefix sum up to j of
    e^(q k'_m) v'_m - e^(q k_m) v_m (and likewise the denominator): one prefix sum over all pairs at once.
    """
    b, t, _ = x.shape
    offset = torch.arange(b)[:, None]
    attn = first.attn
    q, k, v = attn.project(first.ln1(x))  # [B, H, T, dh]
    _, k_s, v_s = attn.project(first.ln1(known))  # the shifted sequence's keys and values
    causal = attention_mask(keep)[:, 0]  # [B, T, T]
    logits = attn.logits(q, k).masked_fill(~causal[:, None], float("-inf"))  # [B, H, T(i), T(m)]
    logits_s = attn.logits(q, k_s).masked_fill(~known_keep[:, None, None, :], float("-inf"))
    top = torch.maximum(logits.amax(-1, keepdim=True), logits_s.amax(-1, keepdim=True))  # one shift per row
    e, e_s = (logits - top).exp(), (logits_s - top).exp()  # [B, H, T, T]
    swap = (e_s[..., None] * v_s[:, :, None] - e[..., None] * v[:, :, None]).cumsum(3)  # [B, H, T(i), T(j), dh]
    swap_den = (e_s - e).cumsum(3)[..., None]  # [B, H, T(i), T(j), 1]
    pair_ij = (offset * t * t + i_of * t + j_of).ravel()  # rows of [B * T(i) * T(j), ...] tables
    row_i = (offset * t + i_of).ravel()
    numerator = _rows(e @ v).index_select(0, row_i) + _pairs(swap, pair_ij)  # [B * P, H, dh]
    denominator = _rows(e.sum(-1, keepdim=True)).index_select(0, row_i) + _pairs(swap_den, pair_ij)  # [B * P, H, 1]
    o = (numerator / denominator).flatten(1)
    return first.after_attention(x.reshape(b * t, -1).index_select(0, row_i), attn.proj(o))


def _pairs(z: Tensor, rows: Tensor) -> Tensor:
    """[B, H, T, T, e] -> rows of its [B * T * T, H, e] view (one row per (sequence, i, j))."""
    b, h, t, _, e = z.shape
    return z.permute(0, 2, 3, 1, 4).reshape(b * t * t, h, e).index_select(0, rows)


def _rows(z: Tensor) -> Tensor:
    """[B, H, T, dh] -> [B * T, H, dh]: one row per (sequence, position), for row look-ups."""
    return z.transpose(1, 2).reshape(-1, *z.shape[1:2], z.shape[-1])
