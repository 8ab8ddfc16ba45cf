"""Causal multi-head self-attention, written out so its weights can be returned and refined (AWRSR).

Masks: a query attends to itself and to earlier non-padding keys. A padding query (left padding) is
allowed its own key only, so no softmax row is empty (no NaN), and its returned weights are zeroed.
At inference, when weights are not requested and the score is scaled-dot, PyTorch's fused
`scaled_dot_product_attention` computes the same result faster; in training the explicit path is used so
attention dropout draws its mask with our fast `Dropout`.

Refinement (AWRSR, measured in docs/awrsr.md) maps each head's weight matrix A into an r-dimensional
"correlation space" and attends there: a query i moves weight onto keys j whose attention patterns
correlate with its own, which is how higher-order dependencies are expressed.

    A  = softmax(Q K^T / sqrt(d_h) + M)
    P  = A W1, R = A W2                     (value: P = (A V) U1, R = (A V) U2)
    A' = softmax(P R^T / sqrt(r) + M)
    simple / value: out = A' V;   additive: A* = (1 - g) A + g A', g = sigmoid(gamma_h), out = A* V

The stochastic refinement (made for STOSA, whose items are Gaussians) maps each row A_i to a Gaussian N_i with
mean A_i W1 and diagonal covariance ELU(A_i W2) + 1, and attends by distance between them:
A' = softmax(-W_2^2(N_i, N_j) / sqrt(r) + M); `stochastic` replaces A, `stochastic_additive` mixes like additive.

W1, W2 have one row per absolute position (n = max_len); batches trimmed to T < n use the last T rows,
because sequences are left-padded and so right-aligned with the positional embeddings.

Rotary positions (RoPE, Su et al. 2021) rotate each pair of query/key channels by an angle proportional to
the position, so a score depends on how far apart query and key are, not on where they sit: a head can
learn "the item k steps back" once for every position instead of once per absolute position.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlens.nn.config import INTERVAL_BUCKETS, SASRecConfig
from seqlens.nn.config import REFINEMENTS as REFINEMENTS  # declared in config.py (torch-free), importable here
from seqlens.nn.config import SCORES as SCORES
from seqlens.nn.dropout import Dropout

ROTARY_BASE = 10_000.0  # the wavelengths span 2 pi .. 2 pi * base positions, as in RoFormer


class AttentionWeights(NamedTuple):
    """One layer's weights [B, H, T, T]: `raw` is A; `applied` multiplied V (A', A*, or A when unrefined)."""

    raw: Tensor
    applied: Tensor


def attention_mask(keep: Tensor) -> Tensor:
    """Boolean [B, 1, T, T] mask of allowed (query, key) pairs for left-padded `keep` [B, T]."""
    t = keep.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=keep.device).tril()
    eye = torch.eye(t, dtype=torch.bool, device=keep.device)
    return (causal & (keep[:, None, :] | eye))[:, None]


def masked_softmax(logits: Tensor, allowed: Tensor, keep: Tensor) -> Tensor:
    """Softmax over allowed keys; rows of padding queries become all zeros."""
    return logits.masked_fill(~allowed, float("-inf")).softmax(dim=-1) * keep[:, None, :, None]


def rotate(x: Tensor, positions: Tensor | None = None) -> Tensor:
    """Rotary position embedding of queries or keys x [..., d]: channel pair (i, i + d/2) at position t is
    rotated by t * base^(-2i/d), so that q_s . k_t depends on s - t. `positions` (broadcast to x.shape[:-1])
    default to the row index of x [B, H, T, d]; rows gathered from several places keep their own angles."""
    d = x.shape[-1]
    if positions is None:
        cos, sin = _rotary_table(x.shape[-2], d, x.device, x.dtype).chunk(2, -1)  # [T, d/2] each
    else:
        table = _rotary_table(int(positions.max()) + 1, d, x.device, x.dtype)  # [n, d]: looked up row by row
        # index_select, not table[positions]: 4x faster for the ~20,000 rows masking rotates
        cos, sin = table.index_select(0, positions.reshape(-1)).view(*positions.shape, d).chunk(2, -1)  # [..., d/2]
    x1, x2 = x.chunk(2, -1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


@functools.lru_cache(maxsize=16)
def _rotary_table(n: int, d: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """[n, d]: cosines then sines of `rotary_angles`, made once per shape (every forward pass rotates twice per
    layer); made outside inference mode, so that a table first needed there can be used in training too."""
    with torch.inference_mode(False), torch.no_grad():
        angles = rotary_angles(n, d, device, dtype)
        return torch.cat((angles.cos(), angles.sin()), 1)


def rotary_angles(n: int, d: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """[n, d/2]: the angle by which channel pair (i, i + d/2) turns at positions 0 .. n-1, t * base^(-2i/d)."""
    freqs = ROTARY_BASE ** (-torch.arange(0, d, 2, device=device, dtype=dtype) / d)
    return torch.arange(n, device=device, dtype=dtype)[:, None] * freqs


def positive(x: Tensor) -> Tensor:
    """ELU + 1: how STOSA (and the stochastic refinement) keep variances positive."""
    return F.elu(x) + 1


def wasserstein(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """Squared 2-Wasserstein distances [..., N, M] between diagonal Gaussians: means [..., N, d] and variances
    [..., N, d] against [..., M, d]: ||m1 - m2||^2 + ||sqrt(v1) - sqrt(v2)||^2, as one matrix product of the two
    sides' lifted forms (no [N, M] temporaries but its result)."""
    return gaussian_rows(mean1, var1) @ gaussian_columns(mean2, var2).transpose(-2, -1)


def gaussian_rows(mean: Tensor, var: Tensor) -> Tensor:
    """[..., 2d + 2]: Gaussians as the left factor of the squared 2-Wasserstein distance, [m, s, |m|^2 + |s|^2, 1]
    with s = sqrt(var): gaussian_rows(a) . gaussian_columns(b) = W_2^2(a, b)."""
    s, norm = _root_and_norm(mean, var)
    return torch.cat([mean, s, norm, torch.ones_like(norm)], -1)


def gaussian_columns(mean: Tensor, var: Tensor) -> Tensor:
    """[..., 2d + 2]: Gaussians as the right factor, [-2 m, -2 s, 1, |m|^2 + |s|^2] (see `gaussian_rows`)."""
    s, norm = _root_and_norm(mean, var)
    return torch.cat([-2 * mean, -2 * s, torch.ones_like(norm), norm], -1)


def _root_and_norm(mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    s = var.clamp(min=1e-24).sqrt()
    return s, (mean.square() + s.square()).sum(-1, keepdim=True)


class WeightRefinement(nn.Module):
    """AWRSR's refinement of an attention layer's weights (see the module docstring), for any attention layer
    (SASRec's, STOSA's): it holds the projections into the correlation space and turns A into the applied weights."""

    def __init__(self, refinement: str, heads: int, head_dim: int, max_len: int, rank: int):
        super().__init__()
        self.refinement, self.rank = refinement, rank
        if refinement in ("simple", "additive", "stochastic", "stochastic_additive"):
            # rows of A are convex weights over positions -> unit scale
            self.w1 = nn.Parameter(torch.randn(heads, max_len, rank))
            self.w2 = nn.Parameter(torch.randn(heads, max_len, rank))
        elif refinement == "value":  # (A V) has the scale of V -> the usual 1/sqrt(fan-in)
            self.u1 = nn.Parameter(torch.randn(heads, head_dim, rank) / math.sqrt(head_dim))
            self.u2 = nn.Parameter(torch.randn(heads, head_dim, rank) / math.sqrt(head_dim))
        if refinement in ("additive", "stochastic_additive"):  # g = sigmoid(gamma) starts near 0.1: mostly A
            self.gamma = nn.Parameter(torch.full((heads,), math.log(0.1 / 0.9)))

    def refine(self, raw: Tensor, v: Tensor, allowed: Tensor, keep: Tensor) -> Tensor:
        """The weights [B, H, T, T] applied to the values: A itself, A' or the gated mix of both."""
        if self.refinement == "none":
            return raw
        p, r = self._correlation_space(raw, v)  # [B, H, T, r] each
        if self.refinement.startswith("stochastic"):  # rows as Gaussians: mean P, variances ELU(R) + 1
            var = positive(r)
            logits = -wasserstein(p, var, p, var) / math.sqrt(self.rank)
        else:
            logits = p @ r.transpose(-2, -1) / math.sqrt(self.rank)
        refined = masked_softmax(logits, allowed, keep)  # [B, H, T, T]
        if self.refinement in ("additive", "stochastic_additive"):
            g = torch.sigmoid(self.gamma)[None, :, None, None]
            return (1 - g) * raw + g * refined
        return refined

    def _correlation_space(self, raw: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """P, R [B, H, T, r]: each query's attention pattern (or attended value) projected to rank r."""
        if self.refinement == "value":
            attended = raw @ v
            return attended @ self.u1, attended @ self.u2
        t = raw.shape[-1]
        return raw @ self.w1[:, -t:], raw @ self.w2[:, -t:]


class CausalSelfAttention(WeightRefinement):
    """One layer's attention, built from the model's config (validated there); `refinement` is this layer's
    (AWRSR may refine only some layers)."""

    def __init__(self, cfg: SASRecConfig, refinement: str = "none"):
        dim, heads = cfg.dim, cfg.heads
        super().__init__(refinement, heads, dim // heads, cfg.max_len, cfg.rank)
        self.heads, self.head_dim, self.score = heads, dim // heads, cfg.score
        self.dropout = cfg.dropout if cfg.attention_dropout is None else cfg.attention_dropout
        self.rotary = cfg.rotary
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_dropout = Dropout(self.dropout)
        # relative_bias: one learned score per head and distance i - j (0 .. max_len - 1), zero at the start
        self.distance_bias = nn.Parameter(torch.zeros(heads, cfg.max_len)) if cfg.relative_bias else None
        # time_bias: one learned score per head and bucket of the time between query and key item, zero at the start
        self.time_bias = nn.Parameter(torch.zeros(heads, INTERVAL_BUCKETS)) if cfg.time_bias else None
        if cfg.score == "additive":  # Bahdanau: e_ij = v . tanh(q_i + k_j), per head
            self.v = nn.Parameter(torch.randn(heads, self.head_dim) / math.sqrt(self.head_dim))

    def forward(
        self, x: Tensor, keep: Tensor, return_attention: bool = False, gaps: Tensor | None = None
    ) -> tuple[Tensor, AttentionWeights | None]:
        """x [B, T, D], keep [B, T] (False at padding) -> (output [B, T, D], weights or None); `gaps` [B, T, T]: the
        time-gap bucket of each query and key item (with `time_bias`)."""
        b, t, d = x.shape
        q, k, v = self.project(x)  # [B, H, T, dh] each
        allowed = attention_mask(keep)  # [B, 1, T, T]
        biased = self.distance_bias is not None or self.time_bias is not None
        fused = not return_attention and not (self.training and self.dropout > 0) and not biased
        if self.refinement == "none" and self.score == "scaled_dot" and fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            out, weights = out * keep[:, None, :, None], None  # padding queries: zeros, as in the explicit path
        else:
            logits = self.logits(q, k)  # [B, H, T, T]
            if self.distance_bias is not None:  # by distance i - j (0 above the diagonal, which the mask hides)
                i = torch.arange(t, device=x.device)
                logits = logits + self.distance_bias[:, (i[:, None] - i).clamp(min=0)]  # + [H, T, T]
            if self.time_bias is not None:  # by the time between query and key item
                if gaps is None:
                    raise ValueError("time_bias reads the time gaps between items: pass `gaps` (SASRecNet does)")
                logits = logits + self.time_bias[:, gaps].transpose(0, 1)  # + [B, H, T, T]
            raw = masked_softmax(logits, allowed, keep)  # [B, H, T, T]
            applied = self.refine(raw, v, allowed, keep)
            out = self.attn_dropout(applied) @ v  # [B, H, T, dh]
            weights = AttentionWeights(raw, applied) if return_attention else None
        out = out.transpose(1, 2).contiguous().view(b, t, d)  # [B, T, D]: the heads side by side
        return self.proj(out), weights

    def project(self, x: Tensor, positions: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values [B, H, T, dh] of x [B, T, D] (rotated by position with rotary attention; the
        rows' `positions` [T] default to 0 .. T-1)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        if self.rotary:
            q, k = rotate(q, positions), rotate(k, positions)
        return q, k, v

    def query_at(self, x: Tensor, positions: Tensor) -> Tensor:
        """Queries [N, H, dh] of rows x [N, D] sitting at `positions` [N] (rows recomputed one by one)."""
        d = x.shape[-1]
        q = nn.functional.linear(x, self.qkv.weight[:d], self.qkv.bias[:d]).view(len(x), self.heads, self.head_dim)
        return rotate(q, positions[:, None]) if self.rotary else q

    def values_of_mix(self, mixed: Tensor, mass: Tensor) -> Tensor:
        """sum_i w_i v_i [N, H, dh] from the weighted inputs sum_i w_i x_i [N, H, D] and weights sum_i w_i [N, H].

        Values are affine in the input, so many rows' weighted values cost one projection of their mix.
        """
        d = mixed.shape[-1]
        w_v = self.qkv.weight[2 * d :].view(self.heads, self.head_dim, d)  # [H, dh, D]
        return torch.einsum("nhd,hkd->nhk", mixed, w_v) + mass[..., None] * self.qkv.bias[2 * d :].view(self.heads, -1)

    def logits(self, q: Tensor, k: Tensor) -> Tensor:
        """Attention scores [..., Tq, Tk] of queries [..., Tq, dh] against keys [..., Tk, dh] (before the mask)."""
        if self.score == "additive":
            energy = torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))  # [B, H, ..., Tq, Tk, dh]
            return (energy * self.v.view(self.heads, *[1] * (q.dim() - 2), self.head_dim)).sum(-1)
        return self.scaled(q @ k.transpose(-2, -1))

    def scaled(self, dots: Tensor) -> Tensor:
        """Dot-product scores from query-key dot products (divided by sqrt(d_h) when the score is scaled)."""
        return dots / math.sqrt(self.head_dim) if self.score == "scaled_dot" else dots

    def value_outputs(self, x: Tensor) -> Tensor:
        """[B, T, H, D]: what each position j adds to the output through head h before weighting, v^h_j W_O^h (the
        output projection's bias belongs to no position); x is the attention's input [B, T, D]."""
        b, t, d = x.shape
        v = nn.functional.linear(x, self.qkv.weight[2 * d :], self.qkv.bias[2 * d :]).view(b, t, self.heads, -1)
        return torch.einsum("bthk,ehk->bthe", v, self.proj.weight.view(d, self.heads, self.head_dim))
