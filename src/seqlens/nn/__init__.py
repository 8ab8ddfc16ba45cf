"""Neural building blocks: attention (with weights on request), SASRec, GRU4Rec, losses."""

from typing import TYPE_CHECKING

from seqlens._lazy import lazy_names

if TYPE_CHECKING:  # imported on first use (seqlens/_lazy.py): importing one module imports no other
    from seqlens.nn.attention import AttentionWeights, CausalSelfAttention, attention_mask
    from seqlens.nn.config import LOSSES, REFINEMENTS, SCORES, GRU4RecConfig, SASRecConfig
    from seqlens.nn.gru4rec import GRU4RecNet
    from seqlens.nn.losses import next_item_loss
    from seqlens.nn.next_item import NextItemNet
    from seqlens.nn.sasrec import SASRecNet

__all__ = [
    "LOSSES", "REFINEMENTS", "SCORES", "AttentionWeights", "CausalSelfAttention", "GRU4RecConfig", "GRU4RecNet", "NextItemNet", "SASRecConfig", "SASRecNet", "attention_mask", "next_item_loss",
]  # fmt: skip

__getattr__, __dir__ = lazy_names(__name__)
