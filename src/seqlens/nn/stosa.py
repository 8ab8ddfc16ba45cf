"""STOSA (Fan et al., WWW 2022): every item a Gaussian, attention by Wasserstein distance, in one module.

An item has a mean embedding and a covariance embedding (diagonal variances: ELU + 1 keeps them positive),
each with its own position embedding. Attention scores are minus the squared 2-Wasserstein distance between a
query's and a key's Gaussians (scaled, masked, softmax); the output mean is A V_mean and the output variances
(A * A) V_var, since a weighted sum of independent Gaussians has variance sum a^2 var. The two paths have their
own dense, residual and LayerNorm layers (post-norm, as in the reference code). An item's score is minus the
squared Wasserstein distance between the last position's Gaussian and the item's.

Read from the reference code (zfan20/STOSA) and written anew, with two differences, both named in docs/stosa.md:
the mean is carried through every block (there, a misspelt variable leaves the encoder's mean output equal to
its input embedding), and the history's means are not passed through an ELU (candidate means never are).

The rest of seqlens scores by dot products (losses, top-K, explanations), so hidden states and item vectors are
written in a form whose dot product is exactly that negative distance (s = the square roots of the variances;
the two lifted forms of `attention.wasserstein`, the hidden state's negated):

    hidden = [2 mu, 2 s, -1, -(|mu|^2 + |s|^2)],   item = [mu_i, s_i, |mu_i|^2 + |s_i|^2, 1]
    hidden . item = -(|mu - mu_i|^2 + |s - s_i|^2) = -W_2^2
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlens.nn.attention import (
    AttentionWeights,
    WeightRefinement,
    attention_mask,
    gaussian_columns,
    gaussian_rows,
    masked_softmax,
    positive,
    wasserstein,
)
from seqlens.nn.config import STOSAConfig
from seqlens.nn.dropout import Dropout
from seqlens.nn.losses import uniform_negatives
from seqlens.nn.masking import Masked, masked_last_hidden
from seqlens.nn.next_item import NextItemNet


class WassersteinAttention(WeightRefinement):
    """One block's attention over Gaussians; `refinement` is this block's (AWRSR, as on SASRec)."""

    def __init__(self, cfg: STOSAConfig, refinement: str = "none"):
        dim, heads = cfg.dim, cfg.heads
        super().__init__(refinement, heads, dim // heads, cfg.max_len, cfg.rank)
        self.heads, self.head_dim = heads, dim // heads
        self.mean_qkv, self.var_qkv = nn.Linear(dim, 3 * dim), nn.Linear(dim, 3 * dim)
        self.mean_proj, self.var_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(
        self, mean: Tensor, var: Tensor, keep: Tensor, return_attention: bool = False
    ) -> tuple[Tensor, Tensor, AttentionWeights | None]:
        """mean, var [B, T, D], keep [B, T] -> (mean output, variance output [B, T, D], weights or None)."""
        b, t, d = mean.shape
        q_m, k_m, v_m = self._heads(self.mean_qkv(mean))  # [B, H, T, dh] each
        q_v, k_v, v_v = self._heads(positive(self.var_qkv(var)))
        allowed = attention_mask(keep)  # [B, 1, T, T]
        raw = masked_softmax(-wasserstein(q_m, q_v, k_m, k_v) / math.sqrt(self.head_dim), allowed, keep)
        applied = self.refine(raw, v_m, allowed, keep)  # [B, H, T, T]
        mean_out = (applied @ v_m).transpose(1, 2).reshape(b, t, d)  # [B, T, D]: the heads side by side
        var_out = (applied.square() @ v_v).transpose(1, 2).reshape(b, t, d)
        weights = AttentionWeights(raw, applied) if return_attention else None
        return self.mean_proj(mean_out), self.var_proj(var_out), weights

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        return tuple(z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in x.chunk(3, dim=2))  # type: ignore[return-value]

    def value_outputs(self, mean: Tensor) -> Tensor:
        """[B, T, H, D]: what each position adds to the mean output through head h before weighting (explanations'
        value norms read the mean path, the one that locates the prediction)."""
        b, t, d = mean.shape
        v = F.linear(mean, self.mean_qkv.weight[2 * d :], self.mean_qkv.bias[2 * d :]).view(b, t, self.heads, -1)
        return torch.einsum("bthk,ehk->bthe", v, self.mean_proj.weight.view(d, self.heads, self.head_dim))


class GaussianBlock(nn.Module):
    """Attention, then a feed-forward layer, on each path: residuals and LayerNorms after each (post-norm)."""

    def __init__(self, cfg: STOSAConfig, refinement: str = "none"):
        super().__init__()
        dim = cfg.dim
        self.attn = WassersteinAttention(cfg, refinement)
        self.mean_ln1, self.var_ln1 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mean_ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ELU(), nn.Linear(4 * dim, dim))
        self.var_ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ELU(), nn.Linear(4 * dim, dim))
        self.mean_ln2, self.var_ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = Dropout(cfg.dropout)

    def forward(
        self, mean: Tensor, var: Tensor, keep: Tensor, return_attention: bool = False
    ) -> tuple[Tensor, Tensor, AttentionWeights | None]:
        a_mean, a_var, weights = self.attn(mean, var, keep, return_attention)
        mean = self.mean_ln1(mean + self.dropout(a_mean))
        var = self.var_ln1(var + self.dropout(a_var))
        mean = self.mean_ln2(mean + self.dropout(self.mean_ffn(mean)))
        var = positive(self.var_ln2(var + self.dropout(self.var_ffn(var))))
        real = keep[..., None]
        return mean * real, var * real, weights


class STOSANet(NextItemNet):
    has_attention = True

    def __init__(self, cfg: STOSAConfig):
        super().__init__()
        self.cfg = cfg
        n, dim = cfg.n_items + 1, cfg.dim
        self.item_emb = nn.Embedding(n, dim, padding_idx=0)  # the means (named as every network's item table)
        self.item_var = nn.Embedding(n, dim, padding_idx=0)  # variances before ELU + 1
        self.pos_mean, self.pos_var = nn.Embedding(cfg.max_len, dim), nn.Embedding(cfg.max_len, dim)
        self.ln_mean, self.ln_var = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            GaussianBlock(cfg, cfg.refinement if cfg.refines(i) else "none") for i in range(cfg.layers)
        )
        for m in self.modules():  # the reference's initialisation; the refinement initialises its own
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.01, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.item_emb.weight[0].zero_(), self.item_var.weight[0].zero_()

    @property
    def hidden_dim(self) -> int:
        return 2 * self.cfg.dim + 2

    def forward(
        self, seq: Tensor, return_attention: bool = False, keep: Tensor | None = None, blank: Tensor | None = None
    ) -> tuple[Tensor, list[AttentionWeights] | None]:
        """seq [B, T] left-padded item indices -> hidden [B, T, 2D + 2] (the augmented form of each position's
        Gaussian; zero at padding) and, when asked, per-layer weights [B, H, T, T].

        `keep` [B, T] hides positions in place; `blank` [B, T] puts the average item's embeddings in place of the
        item's (as `SASRecNet.forward`: what the explanations perturb)."""
        keep = seq != 0 if keep is None else keep & (seq != 0)
        t = seq.shape[1]
        mean, var = self.item_emb(seq), self.item_var(seq)  # [B, T, D]
        if blank is not None:
            where = blank[..., None]
            mean = torch.where(where, self.item_emb.weight[1:].mean(0), mean)
            var = torch.where(where, self.item_var.weight[1:].mean(0), var)
        positions = torch.arange(self.cfg.max_len - t, self.cfg.max_len, device=seq.device)  # right-aligned
        real = keep[..., None]
        mean = self.dropout(self.ln_mean(mean + self.pos_mean(positions))) * real
        var = positive(self.dropout(self.ln_var(var + self.pos_var(positions)))) * real
        attentions = []
        for block in self.blocks:
            mean, var, weights = block(mean, var, keep, return_attention)
            attentions.append(weights)
        # the last Gaussians in the form whose dot product with an item vector is -W_2^2 (module docstring)
        return -gaussian_columns(mean, var) * real, attentions if return_attention else None

    def gaussians(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """(means, variances) [..., D] of `items` [...] as candidates: raw means, ELU + 1 variances."""
        return self.item_emb(items), positive(self.item_var(items))

    def item_vectors(self, items: Tensor) -> Tensor:
        """[..., 2D + 2]: items as the right side of the dot product that gives -W_2^2."""
        return gaussian_rows(*self.gaussians(items))

    def item_table(self) -> Tensor:
        return self.item_vectors(torch.arange(self.cfg.n_items + 1, device=self.item_emb.weight.device))

    def extra_loss(self, hidden: Tensor, targets: Tensor, n_items: int) -> Tensor:
        """STOSA's positive-vs-negative term: pvn_weight x mean(max(0, d(history, target) - d(target, negative))),
        one uniform negative per target (of the first `n_items`), d the squared Wasserstein distance."""
        if self.cfg.pvn_weight == 0:
            return hidden.new_zeros(())
        negatives = uniform_negatives(targets, n_items)
        target = self.item_vectors(targets)  # [N, 2D + 2]
        to_target = -(hidden * target).sum(-1)  # [N]
        apart = (target * gaussian_columns(*self.gaussians(negatives))).sum(-1)
        return self.cfg.pvn_weight * (to_target - apart).clamp(min=0).mean()

    def masked_last_hidden(self, seq: Tensor, times: Tensor | None = None) -> Masked:
        """`hidden` [B, T, 2D + 2]: column j is the last hidden state with position j hidden in place, and the unchanged
        history's `states` (see `nn.masking`; STOSA reads no `times`)."""
        return masked_last_hidden(self, seq)
