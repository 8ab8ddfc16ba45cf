"""GRU4Rec (Hidasi et al. 2016) as a next-item network: a GRU over the history, shared item embeddings.

The recurrent baseline for SASRec: same inputs, same losses, same scoring, no attention. Histories
arrive left-padded (the most recent item last, as SASRec wants them); they are packed so that the GRU
starts at each history's first real item and never reads padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlens.nn.config import GRU4RecConfig
from seqlens.nn.dropout import Dropout
from seqlens.nn.next_item import NextItemNet


class GRU4RecNet(NextItemNet):
    def __init__(self, cfg: GRU4RecConfig):
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.dim, padding_idx=0)
        self.emb_dropout = Dropout(cfg.dropout)
        self.gru = nn.GRU(
            cfg.dim, cfg.dim, cfg.layers, batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0
        )
        nn.init.xavier_normal_(self.item_emb.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seq: Tensor, return_attention: bool = False) -> tuple[Tensor, None]:
        """seq [B, T] left-padded item indices -> hidden [B, T, D] (zeros at padding); no attention."""
        b, t = seq.shape
        keep = seq != 0
        lengths = keep.sum(1)
        shift = (t - lengths)[:, None]
        cols = torch.arange(t, device=seq.device)[None]
        right = seq.gather(1, (cols + shift) % t)  # real items first, then padding
        x = self.emb_dropout(self.item_emb(right))
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=t)
        hidden = out.gather(1, ((cols - shift) % t)[..., None].expand(b, t, out.shape[-1]))  # back to left padding
        return hidden * keep[..., None], None
