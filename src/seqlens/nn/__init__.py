"""Neural building blocks: attention (with weights on request), SASRec, GRU4Rec, losses."""

from seqlens.nn.attention import REFINEMENTS, SCORES, AttentionWeights, CausalSelfAttention, attention_mask
from seqlens.nn.gru4rec import GRU4RecConfig, GRU4RecNet
from seqlens.nn.losses import LOSSES, next_item_loss
from seqlens.nn.next_item import NextItemNet
from seqlens.nn.sasrec import SASRecConfig, SASRecNet

__all__ = [
    "LOSSES", "REFINEMENTS", "SCORES", "AttentionWeights", "CausalSelfAttention", "GRU4RecConfig", "GRU4RecNet", "NextItemNet", "SASRecConfig", "SASRecNet", "attention_mask", "next_item_loss",
]  # fmt: skip
