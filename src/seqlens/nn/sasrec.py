"""SASRec (Kang & McAuley, ICDM 2018) as one readable module: embeddings, causal blocks, shared scoring.

Item index 0 is padding. Scores for the next item are the last hidden state dotted with the item
embedding table (shared with the input; see `NextItemNet`), so column 0 of `scores` is always -inf.
Its hyper-parameters are declared on `SASRecConfig`, in config.py (no torch there).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn

from seqlens.data.codes import ContextCodes, UserCodes, ValueCodes
from seqlens.data.items import ItemCodes
from seqlens.data.sequences import UNKNOWN_TIME
from seqlens.nn.attention import AttentionWeights, CausalSelfAttention
from seqlens.nn.config import INTERVAL_BUCKETS as INTERVAL_BUCKETS  # declared in config.py, importable here
from seqlens.nn.config import POSITIONS as POSITIONS  # declared in config.py (torch-free), importable here as before
from seqlens.nn.config import SASRecConfig
from seqlens.nn.dropout import Dropout
from seqlens.nn.masking import Masked, masked_last_hidden, removed_last_hidden
from seqlens.nn.next_item import NextItemNet


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
        self, x: Tensor, keep: Tensor, return_attention: bool = False, gaps: Tensor | None = None
    ) -> tuple[Tensor, AttentionWeights | None]:
        a, weights = self.attn(self.ln1(x), keep, return_attention, gaps)  # [B, T, D]
        return self.after_attention(x, a) * keep[..., None], weights

    def after_attention(self, x: Tensor, a: Tensor) -> Tensor:
        """The residual sum of input x and attention output a, then the feed-forward with its residual."""
        return self.feed_forward(x + self.dropout(a))

    def feed_forward(self, x: Tensor) -> Tensor:
        """The feed-forward with its residual, of the residual stream x after attention."""
        return x + self.dropout(self.ffn(self.ln2(x)))


class ItemAttributes(nn.Module):
    """Embeddings of the items' attribute values: per column, the mean of an item's values' embeddings (none:
    zero), summed over the columns. The codes (`data.ItemCodes`) are buffers rebuilt from the saved model's
    features.json, not weights."""

    def __init__(self, codes: ItemCodes, dim: int):
        super().__init__()
        self.dim, self.columns = dim, list(codes.codes)
        self.tables = nn.ModuleList(
            nn.Embedding(len(codes.vocabularies[c]) + 1, dim, padding_idx=0) for c in self.columns
        )
        for k, c in enumerate(self.columns):
            self.register_buffer(f"codes_{k}", torch.from_numpy(codes.codes[c]), persistent=False)  # [n_items + 1, V]

    def forward(self, items: Tensor, hide: Tensor | None = None) -> Tensor:
        """items [...] internal indices -> [..., D]; `hide` [..., columns] leaves out a column's values where True."""
        out = torch.zeros((*items.shape, self.dim), device=items.device)
        for k, table in enumerate(self.tables):
            codes = getattr(self, f"codes_{k}")[items]  # [..., V]
            count = (codes > 0).sum(-1, keepdim=True).clamp(min=1)
            part = table(codes).sum(-2) / count  # [..., D]
            out = out + (part if hide is None else part * ~hide[..., k : k + 1])
        return out


class ValueEmbeddings(nn.Module):
    """Embeddings of categorical values (a request's user attributes or context), summed over the columns; code 0
    (unknown) embeds to zero."""

    def __init__(self, codes: ValueCodes, dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(len(v) + 1, dim, padding_idx=0) for v in codes.vocabularies.values())

    def forward(self, codes: Tensor, hide: Tensor | None = None) -> Tensor:
        """codes [..., columns] -> [..., D]; `hide` [..., columns] leaves out a column's value where True."""
        parts = torch.stack([table(codes[..., k]) for k, table in enumerate(self.tables)], -2)  # [..., columns, D]
        return (parts if hide is None else parts * ~hide[..., None]).sum(-2)


def interval_buckets(seq: Tensor, times: Tensor | None) -> Tensor:
    """[B, T] bucket (`INTERVAL_BUCKETS`) of the time since the previous item of left-padded `seq` [B, T] with
    timestamps `times` [B, T] (seconds; `UNKNOWN_TIME` where not known; None: unknown everywhere)."""
    real = seq != 0
    if times is None:
        return real.long()
    before, after = times[:, :-1], times[:, 1:]
    known = real[:, :-1] & (before != UNKNOWN_TIME) & (after != UNKNOWN_TIME)  # after padding (the first item): 1
    return torch.cat([real[:, :1].long(), gap_buckets(after - before, known, real[:, 1:])], 1)


def pair_buckets(seq: Tensor, times: Tensor | None) -> Tensor:
    """[B, T, T] bucket of the time between query item i and key item j (`time_bias`; 0 where either is padding),
    symmetric: out of order or not, the bucket of the absolute gap."""
    real = seq != 0
    both = real[:, :, None] & real[:, None, :]
    if times is None:
        return both.long()
    a, b = times[:, :, None], times[:, None, :]
    return gap_buckets((a - b).abs(), (a != UNKNOWN_TIME) & (b != UNKNOWN_TIME), both)


def gap_buckets(gap: Tensor, known: Tensor, real: Tensor) -> Tensor:
    """Buckets of time gaps `gap` (seconds): one per doubling from 2 (the same second; a negative gap, out of order,
    counts as 0 s) where `known`, else 1 (unknown), and 0 where not `real` (padding)."""
    bucket = (2 + torch.floor(torch.log2(gap.clamp(min=0).double() + 1)).long()).clamp(max=INTERVAL_BUCKETS - 1)
    return torch.where(known, bucket, 1) * real


class SASRecNet(NextItemNet):
    has_attention = True

    def __init__(
        self,
        cfg: SASRecConfig,
        attributes: ItemCodes | None = None,
        users: UserCodes | None = None,
        context: ContextCodes | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.dim, padding_idx=0)
        # cfg.features names the columns; `attributes` holds their codes for this catalogue (`users` and `context`:
        # the vocabularies of cfg.user_features and cfg.context)
        self.attributes = ItemAttributes(attributes, cfg.dim) if attributes is not None else None
        self.users = ValueEmbeddings(users, cfg.dim) if users is not None else None
        self.context = ValueEmbeddings(context, cfg.dim) if context is not None else None
        self._table: Tensor | None = None  # the item table kept between inference calls (`item_table`)
        self._table_key: tuple | None = None
        self.pos_emb = None if cfg.positions == "none" else nn.Embedding(cfg.max_len, cfg.dim)
        self.time_emb = None if cfg.time == "none" else nn.Embedding(INTERVAL_BUCKETS, cfg.dim, padding_idx=0)
        self.emb_dropout = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, cfg.refinement if cfg.refines(i) else "none") for i in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.dim)
        for m in self.modules():  # the attention module initialises its own (additive score, refinement)
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.xavier_normal_(m.weight)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()  # padding (no item, no value) contributes nothing

    def forward(
        self,
        seq: Tensor,
        return_attention: bool = False,
        keep: Tensor | None = None,
        blank: Tensor | None = None,
        hide: Tensor | None = None,
        times: Tensor | None = None,
    ) -> tuple[Tensor, list[AttentionWeights] | None]:
        """seq [B, T] left-padded item indices -> hidden [B, T, D] (and per-layer [B, H, T, T] weights).

        `keep` [B, T] (default: seq != 0) hides positions in place: a hidden position is neither attended to
        nor read, while every other item keeps its position (what `masked_last_hidden` computes for each one).
        `blank` [B, T] hides only the content of positions: the average item embedding stands in for theirs,
        their position stays in the sequence (how the most recent item, which the model reads its
        prediction from, is hidden). `hide` [B, T, groups] leaves out feature groups of positions (see `groups`).
        `times` [B, T]: the items' timestamps, read with `time="interval"` and `time_bias` (a hidden position's
        time still gives the next item its interval). Leaving out a position's "time" group (`hide`) makes its
        interval and every time gap to or from it unknown.
        """
        keep = seq != 0 if keep is None else keep & (seq != 0)
        x = self.embed(seq, blank, hide, times) * keep[..., None]  # [B, T, D]
        gaps = self.time_gaps(seq, times, hide) if self.cfg.time_bias else None  # [B, T, T]
        attentions = []
        for block in self.blocks:
            x, weights = block(x, keep, return_attention, gaps)  # [B, T, D], [B, H, T, T] when asked
            attentions.append(weights)
        return self.ln_f(x) * keep[..., None], attentions if return_attention else None  # [B, T, D]

    def training_forward(self, seq: Tensor, times: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Hidden states [B, T, D] and, with `attention_entropy`, that weight times the mean entropy of the
        applied attention rows of the real queries, over every layer and head."""
        if not self.cfg.attention_entropy:
            return super().training_forward(seq, times)
        hidden, weights = self(seq, return_attention=True, times=times)
        a = torch.stack([w.applied for w in cast("list[AttentionWeights]", weights)])  # [L, B, H, T, T]
        entropy = -(a * a.clamp(min=1e-12).log()).sum(-1)  # [L, B, H, T]; 0 at padding queries (zero rows)
        rows = (seq != 0).sum() * a.shape[0] * a.shape[2]
        return hidden, self.cfg.attention_entropy * entropy.sum() / rows.clamp(min=1)

    def embed(
        self, seq: Tensor, blank: Tensor | None = None, hide: Tensor | None = None, times: Tensor | None = None
    ) -> Tensor:
        """Item (plus time-interval) plus position embeddings [B, T, D] of left-padded seq [B, T] (with embedding
        dropout); where `blank` [B, T] is True, the average item's embedding stands in for the item's; where
        `hide` [B, T, groups] is True, that feature group of the position is left out."""
        t = seq.shape[1]
        x = self.item_vectors(seq, None if hide is None else hide[..., : len(self.item_groups)])  # [B, T, D]
        if blank is not None:
            x = torch.where(blank[..., None], self.item_table()[1:].mean(0), x)
        if self.time_emb is not None:  # part of what the position holds, scaled with the item as its attributes are
            interval = self.time_emb(interval_buckets(seq, times))  # [B, T, D]
            x = x + (interval if hide is None else interval * ~hide[..., -1:])
        x = x * math.sqrt(self.cfg.dim)
        if self.pos_emb is None:  # positions="none"
            return self.emb_dropout(x)
        if self.cfg.positions == "from_start":  # the oldest item read is position 0, as with right padding
            x = x + self.pos_emb(((seq != 0).cumsum(1) - 1).clamp(min=0))
        else:  # from_end
            x = x + self.pos_emb(torch.arange(self.cfg.max_len - t, self.cfg.max_len, device=seq.device)[None])
        return self.emb_dropout(x)

    def item_table(self) -> Tensor:
        """[n_items + 1, D]: id embeddings, plus the attribute embeddings when the model reads features.

        In training, a feature model leaves out the id embedding of a random `id_dropout` share of the items
        (per call: once per step), so that the attribute part alone learns to rank items as well; that is
        all a cold item has."""
        if self.attributes is None:
            return self.item_emb.weight
        ids = self.item_emb.weight
        if self.training and self.cfg.id_dropout > 0:
            ids = ids * (torch.rand(len(ids), 1, device=ids.device) >= self.cfg.id_dropout)
        if self.training or torch.is_grad_enabled():
            return ids + self.attributes(torch.arange(self.cfg.n_items + 1, device=ids.device))
        # inference: the whole catalogue's attribute embeddings cost ~9 ms on Beauty, once per scored batch;
        # kept until the network goes back to training (`train`: the fused Adam updates weights without counting
        # the change in their version) or a weight changes in place (a tensor's version counts that)
        weights = [ids, *(cast(nn.Embedding, t).weight for t in self.attributes.tables)]
        key = tuple((w.data_ptr(), w._version) for w in weights)
        if self._table is None or self._table_key != key:
            self._table = ids + self.attributes(torch.arange(self.cfg.n_items + 1, device=ids.device))
            self._table_key = key
        return self._table

    def train(self, mode: bool = True) -> SASRecNet:
        self._table = None  # the kept item table (`item_table`) is stale once weights train
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):  # type: ignore[override]
        self._table = None
        return super().load_state_dict(*args, **kwargs)

    @property
    def shift_invariant(self) -> bool:  # type: ignore[override]
        return self.cfg.positions == "none"

    @property
    def reads_time(self) -> bool:  # type: ignore[override]
        return self.cfg.time != "none" or self.cfg.time_bias

    @property
    def item_groups(self) -> list[str]:
        """The feature groups an item's vector is the sum of: its identity ("item"), then each attribute column."""
        return ["item", *(self.cfg.features or [])]

    @property
    def groups(self) -> list[str]:
        """The feature groups a position's input is the sum of: the item's (`item_groups`), then its time ("time",
        with `time="interval"` or `time_bias`: its interval and its time gaps to the other items)."""
        return [*self.item_groups, *(["time"] if self.reads_time else [])]

    def time_gaps(self, seq: Tensor, times: Tensor | None, hide: Tensor | None = None) -> Tensor:
        """[B, T, T] time-gap buckets the attention's `time_bias` reads (`pair_buckets`); a pair with a position whose
        "time" group `hide` leaves out is unknown (1)."""
        gaps = pair_buckets(seq, times)
        if hide is None:
            return gaps
        hidden = hide[..., -1]  # [B, T]: the positions whose time is left out
        return torch.where((hidden[:, :, None] | hidden[:, None, :]) & (gaps > 0), 1, gaps)

    def item_vectors(self, items: Tensor, hide: Tensor | None = None) -> Tensor:
        """[..., D] of `items` [...]; `hide` [..., item groups] leaves out the groups where True (`item_groups`)."""
        x = self.item_emb(items)
        if hide is not None:
            x = x * ~hide[..., :1]
        if self.attributes is None:
            return x
        return x + self.attributes(items, None if hide is None else hide[..., 1:])

    def user_vector(self, codes: Tensor, hide: Tensor | None = None) -> Tensor:
        if self.users is None:
            return super().user_vector(codes, hide)
        return self.users(codes, hide)

    def context_vector(self, codes: Tensor, hide: Tensor | None = None) -> Tensor:
        if self.context is None:
            return super().context_vector(codes, hide)
        return self.context(codes, hide)

    def masked_last_hidden(self, seq: Tensor, times: Tensor | None = None) -> Masked:
        """`hidden` [B, T, D]: column j is the last hidden state with position j hidden in place, and the unchanged
        history's `states` (see `nn.masking`)."""
        return masked_last_hidden(self, seq, times)

    def removed_last_hidden(self, seq: Tensor, times: Tensor | None = None) -> Tensor:
        """[B, T, D]: column j is the last hidden state of `seq` without item j (see `nn.masking`)."""
        return removed_last_hidden(self, seq, times)
