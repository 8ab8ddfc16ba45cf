"""Every history item hidden, or removed, in turn: exactly, in one pass that reuses what the change leaves alone.

Two ways to take item j out of a left-padded history (most recent item in the last column):
- hidden in place (`masked_last_hidden`): j is neither attended to nor read; every other item keeps its
  position. Nothing before j changes (attention is causal and no position moves).
- removed (`removed_last_hidden`): the history without j, right-aligned as always, so the items before j
  move one column closer to the present. Those items then hold exactly the states of the history shifted
  one column right (its last item dropped), computed once for every j, since attention is causal.

Either way the rows after j must be recomputed, the rest is known. Instead of running the network once per
position (T passes of T positions: about 250 ms for T=200 on one CPU thread, against about 20 ms here), this module:

1. runs the network once, keeping each layer's input, queries, keys, values and weights (removal: on a batch
   of two, the history and the shifted one; hiding the latest item's content then recomputes only the last
   row, layer by layer);
2. in the first layer, gets every row i > j's attention output from what is known: when hiding, by taking
   j's term out of the softmax and renormalising, o_i(-j) = (o_i - a_ij v_j) / (1 - a_ij), per head; when
   removing, from the full row's softmax sums and a prefix sum (up to j) of what swapping in the shifted
   keys changes;
3. in the middle layers (models of three or more), recomputes the rows after j with a full block;
4. in the last layer, computes only the last query, attending to the known keys before j and the
   recomputed ones after it.

Layer norms read every recomputed row; on the CPU they cost more than the matrix products around them, so
their statistics are taken (in the first layer, from per-position means and dot products) and folded into
what reads the normed rows (the feed-forward's first layer, the keys, the mix of values) instead of forming a
normed copy of every pair.

Only (j, i) pairs with i > j are carried from layer to layer: T(T-1)/2 rows instead of T^2, about 8x less
work than T full passes for a two-layer model. The results equal one forward pass per position (the tests
compare them). The shortcut needs the plain softmax weights in the first and last layer (and, for removal,
positions counted from the end, or none); otherwise every position is run as its own pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, cast

import torch
from torch import Tensor, nn

from seqlens.nn.attention import CausalSelfAttention, attention_mask, masked_softmax, rotary_angles
from seqlens.nn.config import SASRecConfig

#: perturbed sequences evaluated per chunk of the one-pass-each path (bounds its T x T attention memory)
CHUNK = 512
#: (j, i) pair rows computed at a time in the shortcut: their tables (1 MB at D = 64) stay in the CPU's cache
PAIR_CHUNK = 4096


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

    def embed(
        self, seq: Tensor, blank: Tensor | None = None, hide: Tensor | None = None, times: Tensor | None = None
    ) -> Tensor: ...


class _Pass(NamedTuple):
    """One block in the pass over the unchanged history: its input x [B, T, D] and, unless the block refines its
    weights (then run whole), the queries, keys and values [B, H, T, dh] of its normed input and its softmax
    weights a [B, H, T, T], which the shortcut reads instead of computing them again."""

    x: Tensor
    qkv: tuple[Tensor, Tensor, Tensor] | None
    a: Tensor | None

    def part(self, rows: slice) -> _Pass:
        """The same for some of the sequences."""
        qkv = None if self.qkv is None else cast("tuple[Tensor, Tensor, Tensor]", tuple(z[rows] for z in self.qkv))
        return _Pass(self.x[rows], qkv, None if self.a is None else self.a[rows])


class Masked(NamedTuple):
    """Every position hidden in turn (`hidden` [B, T, D]: column j is the last hidden state with position j
    hidden), and the unchanged history's hidden states (`states` [B, T, D]), computed on the way."""

    hidden: Tensor
    states: Tensor


def masked_last_hidden(net: _Net, seq: Tensor, times: Tensor | None = None) -> Masked:
    """Column j of `hidden`: the last hidden state of `seq` [B, T] (timestamps `times`, for a network that reads
    them) with position j hidden in place.

    Hiding the position the model reads from would leave nothing to read, so the last column hides only the
    latest item's content: the average item embedding stands in for its own, its position stays (removing
    it instead would move every older item one step closer to the present, which changes what a model of
    distances reads).
    Columns at padding are zero.
    """
    if _shortcut_applies(net, remove=False):
        return _reusing_prefix(cast("_SASRecNet", net), seq, remove=False, times=times)
    out = one_pass_each(net, seq, remove=False, times=times)
    blank = torch.zeros((2, *seq.shape), dtype=torch.bool)
    blank[1, :, -1] = True  # the history, then the history with the latest item's content hidden
    both = time_kwargs(None if times is None else times.repeat(2, 1))
    states = net(seq.repeat(2, 1), blank=blank.flatten(0, 1), **both)[0].view(2, *seq.shape, -1)
    out[:, -1] = states[1, :, -1]
    return Masked(out, states[0])


def removed_last_hidden(net: _SASRecNet, seq: Tensor, times: Tensor | None = None) -> Tensor:
    """[B, T, D]: column j is the last hidden state of `seq` [B, T] with item j removed (the items before it
    one column closer to the present, as if the user had never interacted with it; the item after it then
    follows the one before it in time). Zero at padding."""
    if _shortcut_applies(net, remove=True):
        return _reusing_prefix(net, seq, remove=True).hidden
    return one_pass_each(net, seq, remove=True, times=times)


def keep_only(seq: Tensor, keep: Tensor) -> Tensor:
    """Left-padded sequences [N, T] holding only the items where `keep` [N, T] is True, in their order.

    This is how an item is removed from a history: the items before it move one step closer to the
    present (positions are right-aligned), exactly as if the user had never interacted with it.
    """
    return compacted(seq, keep & (seq != 0))


def time_kwargs(times: Tensor | None) -> dict[str, Tensor]:
    """The keyword a network that reads time takes its timestamps by; none when there are none to give (networks
    that read no time take no such keyword)."""
    return {} if times is None else {"times": times}


def compacted(values: Tensor, keep: Tensor) -> Tensor:
    """[N, T] `values` where `keep` [N, T] is True, right-aligned in their order, zeros before (any values, e.g. the
    timestamps of the items `keep_only` keeps)."""
    order = torch.argsort(keep.to(torch.int8), dim=1, stable=True)  # dropped first, kept in order after
    return torch.where(keep.gather(1, order), values.gather(1, order), torch.zeros_like(values))


def _shortcut_applies(net: _Net, remove: bool) -> bool:
    if net.training:
        raise RuntimeError("masking and removal need the network in eval mode (call net.eval())")
    cfg = getattr(net, "cfg", None)
    if not isinstance(cfg, SASRecConfig):  # the shortcut is written for SASRec's blocks
        return False
    # the shortcut's scores read queries and keys only: no refinement in the first and last block, no distance or
    # time bias
    plain = not (cfg.refines(0) or cfg.refines(cfg.layers - 1) or cfg.relative_bias or cfg.time_bias)
    # removing an item moves later items (from the start) or changes the next item's time interval (a time
    # model): inputs after it change, which the shortcut does not recompute
    return plain and not (remove and (cfg.positions == "from_start" or cfg.time != "none"))


def one_pass_each(net: _Net, seq: Tensor, remove: bool, times: Tensor | None = None) -> Tensor:
    """The definition, for any next-item network: one forward pass per (row, position), in chunks (`times`, the
    items' timestamps, for a network that reads them, removed with their items)."""
    b, t = seq.shape
    out = torch.zeros(b, t, net.hidden_dim)
    real = seq != 0
    row, col = (real if remove else real[:, :-1]).nonzero(as_tuple=True)
    for lo in range(0, len(row), CHUNK):
        r, c = row[lo : lo + CHUNK], col[lo : lo + CHUNK]
        keep = torch.arange(t)[None, :] != c[:, None]  # [N, T]
        if remove:
            kept = keep & (seq[r] != 0)
            hidden, _ = net(
                compacted(seq[r], kept), **time_kwargs(None if times is None else compacted(times[r], kept))
            )
        else:
            hidden, _ = net(seq[r], keep=keep, **time_kwargs(None if times is None else times[r]))
        out[r, c] = hidden[:, -1]
    return out


@torch.no_grad()  # in-place writes into pair tables; nothing here is differentiated
def _reusing_prefix(net: _SASRecNet, seq: Tensor, remove: bool, times: Tensor | None = None) -> Masked:
    """The shortcut; pair rows live in flat [B * P, ...] tables so that gathers are cheap row look-ups.

    `known` is what the rows before j attend to or read: the unchanged sequence when hiding, the shifted one
    when removing (where column j holds the item before j, so `through` = 1 includes it).
    """
    b, t = seq.shape
    blocks = cast("list[_Block]", list(net.blocks))
    keep = seq != 0  # [B, T]
    hidden = torch.zeros(b, t, net.hidden_dim)
    if remove:
        other = torch.cat((torch.zeros_like(seq[:, :1]), seq[:, :-1]), 1)  # every item one column later
        passes, last_out = _unchanged_pass(net, torch.cat((seq, other)))
        xs, knowns = [p.part(slice(0, b)) for p in passes], [p.part(slice(b, None)) for p in passes]
        known_keep = other != 0
        hidden[:, -1] = net.ln_f(last_out[b:, -1]) * known_keep[:, -1:]  # the last column: without the latest item
        states = hidden  # removal returns `hidden` only: no unchanged states formed
    else:  # hiding leaves every input but j's as it was, times included (j's time still precedes the next item)
        xs, last_out = _unchanged_pass(net, seq, times)
        knowns, known_keep = xs, keep
        hidden[:, -1] = _latest_content_hidden(net, seq, xs, times)
        states = net.ln_f(last_out) * keep[..., None]
    if t == 1:  # no pairs
        return Masked(hidden, states)

    j_of, i_of = torch.triu_indices(t, t, offset=1)  # the P = T(T-1)/2 pairs (hidden j, later row i)
    if len(blocks) == 1:  # the first layer is also the last: only the last row is needed
        j_of, i_of = j_of[i_of == t - 1], i_of[i_of == t - 1]
    offset = torch.arange(b)[:, None]
    pair_ji = (offset * t * t + j_of * t + i_of).ravel()  # rows of [B * T(j) * T(i), ...] tables
    if remove:
        x_pairs = _first_layer_removed(blocks[0], xs[0], knowns[0], keep, known_keep, j_of, i_of)
    else:
        x_pairs = _first_layer_hidden(blocks[0], xs[0], keep, j_of, i_of)
    through = 1 if remove else 0  # the known keys of pair j: columns < j + through

    for layer in range(1, len(blocks) - 1):  # middle layers: rows after j recomputed in full
        x, known = xs[layer].x, knowns[layer].x
        before = torch.arange(t)[None, :] < torch.arange(t)[:, None] + through  # [T(j), T]: known columns
        dense = torch.where(before[None, :, :, None], known[:, None], x[:, None]).reshape(b * t * t, -1)
        dense[pair_ji] = x_pairs  # [B * T(j) * T, D]: one sequence per j
        keep_j = torch.where(before, known_keep[:, None, :], keep[:, None, :] & ~torch.eye(t, dtype=torch.bool))
        dense = blocks[layer](dense.view(b * t, t, -1) * keep_j.reshape(b * t, t, 1), keep_j.reshape(b * t, t))[0]
        x_pairs = dense.reshape(b * t * t, -1).index_select(0, pair_ji)

    if len(blocks) == 1:
        last_x = x_pairs  # [B * (T-1), D]: row T-1 of each j < T-1
    else:
        last_x = _last_layer(blocks[-1], x_pairs, knowns[-1], keep, known_keep, j_of, i_of, through)

    # padding columns: zero (masked_fill, not a product: an empty history's rows have no key to attend to)
    hidden[:, :-1] = net.ln_f(last_x).view(b, t - 1, -1).masked_fill(~keep[:, :-1, None], 0)
    return Masked(hidden, states)


def _unchanged_pass(net: _SASRecNet, seq: Tensor, times: Tensor | None = None) -> tuple[list[_Pass], Tensor]:
    """The network's pass over `seq` [B, T] up to its final layer norm, block by block, keeping what the shortcut
    reads of each block (`_Pass`); and the last block's output [B, T, D]."""
    keep = seq != 0
    x = net.embed(seq, times=times) * keep[..., None]
    passes = []
    for block in cast("list[_Block]", list(net.blocks)):
        attn = block.attn
        if attn.refinement != "none":
            passes.append(_Pass(x, None, None))
            x = block(x, keep)[0]
            continue
        q, k, v = attn.project(block.ln1(x))  # [B, H, T, dh]
        a = masked_softmax(attn.logits(q, k), attention_mask(keep), keep)  # [B, H, T, T]
        passes.append(_Pass(x, (q, k, v), a))
        x = block.after_attention(x, attn.proj((a @ v).transpose(1, 2).flatten(2))) * keep[..., None]
    return passes, x


def _latest_content_hidden(net: _SASRecNet, seq: Tensor, passes: list[_Pass], times: Tensor | None = None) -> Tensor:
    """[B, D]: the last hidden state with the latest item's content hidden (the average item in its place).

    Only the last row changes, so each layer computes that row's query, key and value and its attention to
    the unchanged rows' keys and values (`passes`) and its own; a layer that refines its weights runs whole.
    """
    b, t = seq.shape
    keep = seq != 0
    blank = torch.zeros_like(keep)
    blank[:, -1] = True
    x = net.embed(seq, blank, times=times)[:, -1:] * keep[:, -1:, None]  # [B, 1, D]
    allowed = attention_mask(keep)[:, :, -1:]  # [B, 1, 1, T]: every item (an empty history: itself)
    for block, p in zip(cast("list[_Block]", list(net.blocks)), passes, strict=True):
        attn = block.attn
        if p.qkv is None:
            x = block(torch.cat((p.x[:, :-1], x), 1), keep)[0][:, -1:]  # the layer's input, last row changed
            continue
        q, k, v = attn.project(block.ln1(x), torch.tensor([t - 1]))  # [B, H, 1, dh]: the last row's
        k, v = (torch.cat((known[:, :, :-1], new), 2) for known, new in ((p.qkv[1], k), (p.qkv[2], v)))
        weights = masked_softmax(attn.logits(q, k), allowed, keep[:, -1:])  # [B, H, 1, T]
        x = block.after_attention(x, attn.proj(_rows(weights @ v).flatten(1))[:, None]) * keep[:, -1:, None]
    return net.ln_f(x[:, 0])


def _first_layer_hidden(first: _Block, unchanged: _Pass, keep: Tensor, j_of: Tensor, i_of: Tensor) -> Tensor:
    """[B * P, D]: the first block's output at row i with position j hidden, for every pair (j, i).

    Row i's attention output without j's term, renormalised. The output projection is linear, so it is
    applied to the T outputs and values once, not to every pair: per head h, W o_i(-j) = W o_i + c (W o_i - W v_j)
    with c = a_ij / (1 - a_ij), and the residual stream after attention is z = y_i + sum_h c_h (p_o_ih - p_v_jh).
    That is affine in per-position vectors, and so is the feed-forward's first linear layer: with the layer
    norm's statistics of z folded in, it is a mix of projected per-position vectors, no product per pair.
    The statistics themselves are sums of per-position means and of dot products between positions
    (`_pair_norm_statistics`), so no pair row is read twice.
    """
    x, (_, _, v), a = unchanged.x, cast("tuple[Tensor, Tensor, Tensor]", unchanged.qkv), cast(Tensor, unchanged.a)
    b, t, d = x.shape  # v [B, H, T, dh], a [B, H, T, T]
    offset = torch.arange(b)[:, None]
    attn = first.attn
    w_o = attn.proj.weight.view(-1, attn.heads, attn.head_dim)  # [D, H, dh]
    o = a @ v  # [B, H, T, dh]: each row's attention output, per head
    p_o, p_v = (torch.einsum("bhtk,dhk->bthd", z, w_o) for z in (o, v))  # [B, T, H, D]
    y = x + attn.proj(_rows(o).flatten(1)).view(b, t, d)  # [B, T, D]: the residual stream after attention
    pair_ij = (offset * t * t + i_of * t + j_of).ravel()  # rows of [B * T(i) * T(j), ...] tables
    a_ij = a.permute(0, 2, 3, 1).reshape(b * t * t, -1).index_select(0, pair_ij)
    c = a_ij / (1 - a_ij).clamp(min=1e-12)  # [B * P, H]
    row_i, row_j = (offset * t + i_of).ravel(), (offset * t + j_of).ravel()
    mean, std = _pair_norm_statistics(y, p_o, p_v, c, pair_ij, row_i, row_j, first.ln2.eps)  # [B * P] each

    lin1, act, lin2 = first.ffn[0], first.ffn[1], first.ffn[-1]
    if not (isinstance(lin1, nn.Linear) and isinstance(lin2, nn.Linear) and len(first.ffn) == 4):  # what it folds
        raise RuntimeError(
            f"the masking shortcut expects a feed-forward of linear, activation, dropout, linear: {first.ffn}"
        )
    g = lin1.weight * first.ln2.weight  # [F, D]: the layer norm's scale folded into the first linear layer
    e, g_1 = lin1.weight @ first.ln2.bias + lin1.bias, g.sum(1)  # [F] each
    # rows [B * T, ...]: y [D] (carrying the second linear layer's bias, which the statistics above left out),
    # p_o and p_v [H, D], and their first-linear-layer images at_i [F], at_o and at_v [H, F]
    at_i, at_o, at_v = (_flat(z @ g.T) for z in (y, p_o, p_v))
    y, p_o, p_v = _flat(y + lin2.bias), _flat(p_o), _flat(p_v)
    out = torch.empty(len(row_i), d)
    for lo in range(0, len(row_i), PAIR_CHUNK):
        part = slice(lo, lo + PAIR_CHUNK)
        r_i, r_j, c_ij = row_i[part], row_j[part], c[part]
        # in place where a fresh pair-sized tensor would do: these tables are the bulk of the work
        z = torch.index_select(y, 0, r_i, out=out[part])  # [N, D]: the residual stream after attention
        z.add_(_weighted(c_ij, p_o.index_select(0, r_i).sub_(p_v.index_select(0, r_j))))
        u = at_i.index_select(0, r_i).add_(_weighted(c_ij, at_o.index_select(0, r_i).sub_(at_v.index_select(0, r_j))))
        u.addr_(mean[part], g_1, alpha=-1).div_(std[part, None]).add_(e)  # [N, F]: the first linear layer of ln2(z)
        z.addmm_(act(u), lin2.weight.T)  # z plus the feed-forward (no dropout in eval mode)
    return out


def _pair_norm_statistics(
    y: Tensor, p_o: Tensor, p_v: Tensor, c: Tensor, pair_ij: Tensor, row_i: Tensor, row_j: Tensor, eps: float
) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation [B * P] over the D channels of z = y_i + sum_h c_h (p_o_ih - p_v_jh), for
    y [B, T, D], p_o and p_v [B, T, H, D] and each pair's c [B * P, H], without forming z: the mean is a mix of
    per-position means, and |z|^2 a quadratic form in c of dot products between positions i and j."""
    b, t, h, d = p_o.shape
    mean = _flat(y.mean(-1)).index_select(0, row_i)  # [B * P]
    mean += (c * (_flat(p_o.mean(-1)).index_select(0, row_i) - _flat(p_v.mean(-1)).index_select(0, row_j))).sum(1)
    y_o = torch.einsum("bid,bihd->bih", y, p_o)[:, :, None]  # [B, T(i), 1, H]
    y_v = torch.einsum("bid,bjhd->bijh", y, p_v)  # [B, T(i), T(j), H]
    o_o = torch.einsum("bihd,bikd->bihk", p_o, p_o)[:, :, None]  # [B, T(i), 1, H, H]
    o_v = torch.einsum("bihd,bjkd->bijhk", p_o, p_v)  # [B, T(i), T(j), H, H]
    v_v = torch.einsum("bjhd,bjkd->bjhk", p_v, p_v)[:, None]  # [B, 1, T(j), H, H]
    cross = (y_o - y_v).reshape(b * t * t, h).index_select(0, pair_ij)  # [B * P, H]: y_i . (p_o_ih - p_v_jh)
    gram = (o_o - o_v - o_v.transpose(-1, -2) + v_v).reshape(b * t * t, h, h).index_select(0, pair_ij)  # [B * P, H, H]
    square = _flat((y * y).sum(-1)).index_select(0, row_i) + 2 * (c * cross).sum(1)
    square += torch.einsum("nh,nhk,nk->n", c, gram, c)  # |z|^2
    return mean, (square / d - mean * mean).clamp_(min=0).add_(eps).sqrt_()


def _last_layer(
    last: _Block,
    x_pairs: Tensor,
    known: _Pass,
    keep: Tensor,
    known_keep: Tensor,
    j_of: Tensor,
    i_of: Tensor,
    through: int,
) -> Tensor:
    """[B * (T-1), D]: the last block's output at the last row for each j, whose query attends to the known
    keys before j (`known`: the block in the pass those rows come from) and to the recomputed rows after it
    (`x_pairs` [B * P, D]).

    The recomputed rows are read through the block's layer norm, folded into what reads them (their keys, the
    mix of their values) rather than applied to every pair.
    """
    b, t = keep.shape
    offset = torch.arange(b)[:, None]
    attn, norm = last.attn, last.ln1
    last_rows = (offset * len(i_of) + torch.flatten(torch.nonzero(i_of == t - 1))).ravel()  # pair rows (j, T-1)
    q = attn.query_at(norm(x_pairs.index_select(0, last_rows)), torch.full((len(last_rows),), t - 1))  # [B(T-1), H, dh]
    _, k, v = cast("tuple[Tensor, Tensor, Tensor]", known.qkv)  # [B, H, T, dh]: keys and values of the known rows
    q_j = (offset * (t - 1) + j_of).ravel()  # each pair's query row
    pair_jt = (offset * (t - 1) * t + j_of * t + i_of).ravel()  # rows of [B * (T-1) * T, H] tables
    scores = attn.logits(q.view(b, t - 1, *q.shape[1:]).transpose(1, 2), k)  # [B, H, T-1, T]: known keys
    scores = scores.permute(0, 2, 3, 1).contiguous()  # [B, T-1, T, H]
    key_logits = _normed_key_logits(attn, norm, q, t)
    positions = i_of.repeat(b)  # [B * P]: each pair row's column
    mean, std, after = torch.empty(len(x_pairs)), torch.empty(len(x_pairs)), torch.empty(len(x_pairs), attn.heads)
    for lo in range(0, len(x_pairs), PAIR_CHUNK):
        part = slice(lo, lo + PAIR_CHUNK)
        mean[part], std[part] = _norm_statistics(x_pairs[part], norm.eps)
        after[part] = key_logits(x_pairs[part], mean[part], std[part], q_j[part], positions[part])
    scores.view(-1, scores.shape[-1]).index_copy_(0, pair_jt, after)
    columns, rows = torch.arange(t)[None, :], torch.arange(t - 1)[:, None]
    known_part = columns < rows + through  # [T-1, T]
    allowed = torch.where(known_part, known_keep[:, None, :], (columns > rows) & keep[:, None, :])
    weights = scores.masked_fill(~allowed[..., None], float("-inf")).softmax(2)
    out = _rows((weights * known_part[:, :, None]).permute(0, 3, 1, 2) @ v)  # [B * (T-1), H, dh]: known keys
    w_after = weights.view(-1, weights.shape[-1]).index_select(0, pair_jt)  # [B * P, H]
    # plus the keys after j: their values through the mix of their normed inputs (one projection per query),
    # sum_i w_i norm(x_i) = scale * sum_i (w_i / std_i) (x_i - mean_i) + shift * sum_i w_i
    per_std = w_after / std[:, None]  # [B * P, H]
    mixed = torch.zeros(len(out), attn.heads, x_pairs.shape[-1])  # [B * (T-1), H, D]
    for lo in range(0, len(x_pairs), PAIR_CHUNK):
        part = slice(lo, lo + PAIR_CHUNK)
        mixed.index_add_(0, q_j[part], per_std[part, :, None] * x_pairs[part, None])
    centre = torch.zeros(len(out), attn.heads).index_add_(0, q_j, per_std * mean[:, None])
    mass = torch.zeros(len(out), attn.heads).index_add_(0, q_j, w_after)  # [B * (T-1), H]
    mixed = (mixed - centre[..., None]) * norm.weight + mass[..., None] * norm.bias
    out = out + attn.values_of_mix(mixed, mass)
    return last.after_attention(x_pairs.index_select(0, last_rows), attn.proj(out.flatten(1)))


def _normed_key_logits(
    attn: CausalSelfAttention, norm: nn.LayerNorm, q: Tensor, t: int
) -> Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]:
    """A function of rows x [N, D] (with their layer norm statistics `mean`, `std` [N], the query of each
    `of` [N] and their `positions` [N] < t) giving the scores [N, H] of queries q [Q, H, dh] against the keys
    of norm(x).

    norm(x) = scale (x - mean) / std + shift, so its keys are (x W^T - mean W 1) / std + e with W the key
    projection times the scale: no normed table. Without rotary positions not even the keys: q . (W x) is
    (W^T q) . x, one projection per query. With rotary positions the raw keys W x come out of the projection
    as complex channel pairs, rotated by one complex multiplication (queries reordered the same way); the
    affine terms (W 1, e) rotated at every position are a small table per query.
    """
    heads, dh = attn.heads, attn.head_dim
    d = heads * dh
    w_k, b_k = attn.qkv.weight[d : 2 * d], attn.qkv.bias[d : 2 * d]
    w = w_k * norm.weight  # [H * dh, D]
    e = w_k @ norm.bias + b_k  # [H * dh]
    if attn.score != "additive" and not attn.rotary:
        u = torch.einsum("qhk,hkd->qhd", q, w.view(heads, dh, d))  # [Q, H, D]
        q_w1, q_e = (q * w.sum(1).view(heads, dh)).sum(-1), (q * e.view(heads, dh)).sum(-1)  # [Q, H]

        def dot(x: Tensor, mean: Tensor, std: Tensor, of: Tensor, positions: Tensor) -> Tensor:
            dots = (u.index_select(0, of) * x[:, None]).sum(-1)  # [N, H]
            dots.sub_(mean[:, None] * q_w1.index_select(0, of)).div_(std[:, None]).add_(q_e.index_select(0, of))
            return attn.scaled(dots)

        return dot
    if not attn.rotary:  # the additive score reads whole keys
        w_1 = w.sum(1)

        def additive(x: Tensor, mean: Tensor, std: Tensor, of: Tensor, positions: Tensor) -> Tensor:
            keys = (x @ w.T).addr_(mean, w_1, alpha=-1).div_(std[:, None]).add_(e).view(len(x), heads, dh)
            return attn.logits(q.index_select(0, of)[:, :, None], keys[:, :, None])[..., 0, 0]

        return additive
    # rotary: channel pairs (i, i + dh/2) side by side, (re, im), turned as complex numbers
    order = torch.arange(d).view(heads, 2, dh // 2).transpose(1, 2).flatten()
    w, e = w[order], e[order]
    q = q.view(len(q), heads, 2, dh // 2).transpose(2, 3).flatten(2)  # [Q, H, dh] in the keys' order
    turns = torch.polar(torch.ones(()), rotary_angles(t, dh))  # [T, dh / 2] complex

    def turned(keys: Tensor, positions: Tensor) -> Tensor:  # keys [N, H * dh] at positions [N] (in place)
        keys = keys.view(len(keys), heads, dh)
        torch.view_as_complex(keys.view(len(keys), heads, dh // 2, 2)).mul_(turns.index_select(0, positions)[:, None])
        return keys

    # the affine part, per (query, position): q . R_i (W 1) and q . R_i e, so that pairs need only W x
    every = torch.arange(t)
    shifts = [torch.einsum("qhk,thk->qth", q, turned(z.expand(t, d).clone(), every)) for z in (w.sum(1), e)]
    along_w1, along_e = (z.reshape(-1, heads) for z in shifts)  # [Q * T, H]

    def rotated(x: Tensor, mean: Tensor, std: Tensor, of: Tensor, positions: Tensor) -> Tensor:
        dots = (q.index_select(0, of) * turned(x @ w.T, positions)).sum(-1)  # [N, H]: q . R_i (W x)
        at = of * t + positions
        dots.sub_(mean[:, None] * along_w1.index_select(0, at)).div_(std[:, None]).add_(along_e.index_select(0, at))
        return attn.scaled(dots)

    return rotated


def _norm_statistics(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation [N] of rows x [N, D] as LayerNorm takes them (eps inside the root)."""
    mean = x.mean(1)  # E[x^2] - E[x]^2: a third of LayerNorm's time on CPU; rows here are normed residual sums
    return mean, (x * x).mean(1).sub_(mean * mean).clamp_(min=0).add_(eps).sqrt_()


def _weighted(c: Tensor, parts: Tensor) -> Tensor:
    """sum_h c_h parts_h [N, E] of per-head weights c [N, H] and parts [N, H, E], which it overwrites."""
    return parts.mul_(c[..., None]).sum(1) if parts.shape[1] > 1 else parts[:, 0].mul_(c)


def _flat(z: Tensor) -> Tensor:
    """[B, T, ...] -> [B * T, ...]: one row per (sequence, position), for row look-ups."""
    return z.reshape(-1, *z.shape[2:])


def _first_layer_removed(
    first: _Block, unchanged: _Pass, known: _Pass, keep: Tensor, known_keep: Tensor, j_of: Tensor, i_of: Tensor
) -> Tensor:
    """[B * P, D]: the first block's output at row i with item j removed, for every pair (j, i).

    Row i attends to the shifted sequence's keys in columns <= j and the original keys in columns j+1..i, so
    its softmax numerator is the full row's, sum_m e^(q k_m) v_m, plus the prefix sum up to j of
    e^(q k'_m) v'_m - e^(q k_m) v_m (and likewise the denominator): one prefix sum over all pairs at once.
    """
    x = unchanged.x
    b, t, _ = x.shape
    offset = torch.arange(b)[:, None]
    attn = first.attn
    q, k, v = cast("tuple[Tensor, Tensor, Tensor]", unchanged.qkv)  # [B, H, T, dh]
    _, k_s, v_s = cast("tuple[Tensor, Tensor, Tensor]", known.qkv)  # the shifted sequence's keys and values
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
