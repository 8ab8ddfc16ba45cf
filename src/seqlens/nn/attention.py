"""Causal multi-head self-attention, written out so its weights can be returned and, later, refined.

Masks: a query attends to itself and to earlier non-padding keys. A padding query (left padding) is
allowed its own key only, so no softmax row is empty (no NaN), and its returned weights are zeroed.
At inference, when weights are not requested and the score is scaled-dot, PyTorch's fused
`scaled_dot_product_attention` computes the same result faster; in training the explicit path is used so
attention dropout draws its mask with our fast `Dropout`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlens.nn.dropout import Dropout

SCORES = ("scaled_dot", "dot", "additive")


def attention_mask(keep: Tensor) -> Tensor:
    """Boolean [B, 1, T, T] mask of allowed (query, key) pairs for left-padded `keep` [B, T]."""
    t = keep.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=keep.device).tril()
    eye = torch.eye(t, dtype=torch.bool, device=keep.device)
    return (causal & (keep[:, None, :] | eye))[:, None]


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, score: str = "scaled_dot"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        if score not in SCORES:
            raise ValueError(f"score={score!r}; choose one of {', '.join(SCORES)}")
        self.heads, self.head_dim, self.score, self.dropout = heads, dim // heads, score, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_dropout = Dropout(dropout)
        if score == "additive":  # Bahdanau: e_ij = v . tanh(q_i + k_j), per head
            self.v = nn.Parameter(torch.randn(heads, self.head_dim) / math.sqrt(self.head_dim))

    def forward(self, x: Tensor, keep: Tensor, return_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        """x [B, T, D], keep [B, T] (False at padding) -> (output [B, T, D], weights [B, H, T, T] or None)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        allowed = attention_mask(keep)
        if self.score == "scaled_dot" and not return_attention and not (self.training and self.dropout > 0):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            out = out * keep[:, None, :, None]  # padding queries: zeros, as in the explicit path
            weights = None
        else:
            if self.score == "additive":
                logits = torch.tanh(q[:, :, :, None, :] + k[:, :, None, :, :]) @ self.v[None, :, None, :, None]
                logits = logits.squeeze(-1)
            else:
                logits = q @ k.transpose(-2, -1)
                if self.score == "scaled_dot":
                    logits = logits / math.sqrt(self.head_dim)
            weights = logits.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            weights = weights * keep[:, None, :, None]  # padding queries: all-zero rows
            out = self.attn_dropout(weights) @ v
        out = out.transpose(1, 2).contiguous().view(b, t, d)
        return self.proj(out), weights
