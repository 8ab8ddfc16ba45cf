"""SASRec (Kang & McAuley, ICDM 2018) as one readable module: embeddings, causal blocks, shared scoring.

Item index 0 is padding. Scores for the next item are the last hidden state dotted with the item
embedding table (shared with the input; see `NextItemNet`), so column 0 of `scores` is always -inf.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from seqlens.nn.attention import REFINEMENTS, SCORES, AttentionWeights, CausalSelfAttention
from seqlens.nn.dropout import Dropout
from seqlens.nn.masking import masked_last_hidden, removed_last_hidden
from seqlens.nn.next_item import NextItemNet
from seqlens.params import param, schema_of

POSITIONS = ("from_end", "from_start", "none")


@dataclass
class SASRecConfig:
    """SASRec's network hyper-parameters: the one place each is declared, validated and documented."""

    n_items: int  # from the data, not a hyper-parameter
    max_len: int = param(
        50,
        "How many of the most recent items the model reads. Raise it for long, dense histories "
        "(MovieLens: 200); cost grows with its square.",
        minimum=1,
    )
    dim: int = param(64, "Width of item embeddings and hidden states.", minimum=1)
    layers: int = param(2, "Self-attention blocks.", minimum=1)
    heads: int = param(1, "Attention heads per block; `dim` must be divisible by it.", minimum=1)
    dropout: float = param(
        0.5,
        "Dropout on embeddings, attention and feed-forward, in [0, 1). 0.5 suits sparse data (Amazon); "
        "0.2 dense (MovieLens).",
        minimum=0.0,
        below=1.0,
    )
    ffn_dim: int | None = param(
        None, "Width of the point-wise feed-forward layer; None = `dim`, as in the paper.", minimum=1
    )
    score: str = param("scaled_dot", "How a query scores a key.", choices=SCORES)
    refinement: str = param(
        "none",
        "AWRSR attention weight refinement (measured in docs/awrsr.md: no gain over plain SASRec so far).",
        choices=REFINEMENTS,
    )
    rank: int = param(32, "Dimension r of AWRSR's correlation space.", minimum=1)
    refine_layers: list[int] | None = param(
        None, "The blocks that refine (negative = from the end, e.g. [-1]); None = all."
    )
    positions: str = param(
        "from_end",
        "Learned position embeddings counted from the most recent item (the latest item is always "
        "the last position), from the oldest one read, or none.",
        choices=POSITIONS,
        legacy="from_end",
    )
    rotary: bool = param(
        False,
        "Rotate queries and keys by position (RoPE), so attention scores see distances; with "
        "`positions='none'` it was better on MovieLens-1M and worse on Beauty.",
    )

    def __post_init__(self) -> None:
        values = {k: v for k, v in asdict(self).items() if k != "n_items"}
        schema_of(type(self)).validate(values, where=f"{type(self).__name__}: ")

    @classmethod
    def check(cls, p: dict) -> None:
        """The rules that tie parameters together (each value alone was checked against its declaration)."""
        if p["dim"] % p["heads"]:
            raise ValueError(f"dim={p['dim']} must be divisible by heads={p['heads']}")
        bad = [i for i in p["refine_layers"] or [] if not -p["layers"] <= i < p["layers"]]
        if bad:
            raise ValueError(
                f"refine_layers {bad} out of range for layers={p['layers']} (use 0..{p['layers'] - 1} or -1)"
            )
        if p["rotary"] and (p["score"] == "additive" or (p["dim"] // p["heads"]) % 2):
            raise ValueError(
                f"rotary=True needs a dot-product score and an even dim/heads (score={p['score']!r}, "
                f"dim/heads={p['dim'] // p['heads']})"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def refines(self, layer: int) -> bool:
        if self.refinement == "none":
            return False
        if self.refine_layers is None:
            return True
        return layer in {i % self.layers for i in self.refine_layers}


class Block(nn.Module):
    """Pre-norm transformer block; outputs at padding positions are forced to zero."""

    def __init__(self, cfg: SASRecConfig, refinement: str = "none"):
        super().__init__()
        width = cfg.ffn_dim or cfg.dim
        self.ln1 = nn.LayerNorm(cfg.dim)
        self.attn = CausalSelfAttention(cfg, refinement)
        self.ln2 = nn.LayerNorm(cfg.dim)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, width), nn.GELU(), Dropout(cfg.dropout), nn.Linear(width, cfg.dim))
        self.dropout = Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, keep: Tensor, return_attention: bool = False
    ) -> tuple[Tensor, AttentionWeights | None]:
        a, weights = self.attn(self.ln1(x), keep, return_attention)  # [B, T, D]
        return self.after_attention(x, a) * keep[..., None], weights

    def after_attention(self, x: Tensor, a: Tensor) -> Tensor:
        """The residual sum of input x and attention output a, then the feed-forward with its residual."""
        return self.feed_forward(x + self.dropout(a))

    def feed_forward(self, x: Tensor) -> Tensor:
        """The feed-forward with its residual, of the residual stream x after attention."""
        return x + self.dropout(self.ffn(self.ln2(x)))


class SASRecNet(NextItemNet):
    has_attention = True

    def __init__(self, cfg: SASRecConfig):
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.dim, padding_idx=0)
        self.pos_emb = None if cfg.positions == "none" else nn.Embedding(cfg.max_len, cfg.dim)
        self.emb_dropout = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, cfg.refinement if cfg.refines(i) else "none") for i in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.dim)
        for m in self.modules():  # the attention module initialises its own (additive score, refinement)
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.xavier_normal_(m.weight)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(
        self,
        seq: Tensor,
        return_attention: bool = False,
        keep: Tensor | None = None,
        blank: Tensor | None = None,
    ) -> tuple[Tensor, list[AttentionWeights] | None]:
        """seq [B, T] left-padded item indices -> hidden [B, T, D] (and per-layer [B, H, T, T] weights).

        `keep` [B, T] (default: seq != 0) hides positions in place: a hidden position is neither attended to
        nor read, while every other item keeps its position (what `masked_last_hidden` computes for each one).
        `blank` [B, T] hides only the content of positions: the average item embedding stands in for theirs,
        their position stays in the sequence (how the most recent item, which the model reads its
        prediction from, is hidden).
        """
        keep = seq != 0 if keep is None else keep & (seq != 0)
        x = self.embed(seq, blank) * keep[..., None]  # [B, T, D]
        attentions = []
        for block in self.blocks:
            x, weights = block(x, keep, return_attention)  # [B, T, D], [B, H, T, T] when asked
            attentions.append(weights)
        return self.ln_f(x) * keep[..., None], attentions if return_attention else None  # [B, T, D]

    def embed(self, seq: Tensor, blank: Tensor | None = None) -> Tensor:
        """Item plus position embeddings [B, T, D] of left-padded seq [B, T] (with embedding dropout);
        where `blank` [B, T] is True, the average item's embedding stands in for the item's."""
        t = seq.shape[1]
        x = self.item_emb(seq)  # [B, T, D]
        if blank is not None:
            x = torch.where(blank[..., None], self.item_emb.weight[1:].mean(0), x)
        x = x * math.sqrt(self.cfg.dim)
        if self.pos_emb is None:  # positions="none"
            return self.emb_dropout(x)
        if self.cfg.positions == "from_start":  # the oldest item read is position 0, as with right padding
            x = x + self.pos_emb(((seq != 0).cumsum(1) - 1).clamp(min=0))
        else:  # from_end
            x = x + self.pos_emb(torch.arange(self.cfg.max_len - t, self.cfg.max_len, device=seq.device)[None])
        return self.emb_dropout(x)

    def masked_last_hidden(self, seq: Tensor) -> Tensor:
        """[B, T, D]: column j is the last hidden state with position j hidden in place (see `nn.masking`)."""
        return masked_last_hidden(self, seq)

    def removed_last_hidden(self, seq: Tensor) -> Tensor:
        """[B, T, D]: column j is the last hidden state of `seq` without item j (see `nn.masking`)."""
        return removed_last_hidden(self, seq)
