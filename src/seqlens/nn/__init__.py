"""Neural building blocks: attention (with weights on request), SASRec, losses."""

from seqlens.nn.attention import SCORES, CausalSelfAttention, attention_mask
from seqlens.nn.losses import LOSSES, next_item_loss
from seqlens.nn.sasrec import SASRecConfig, SASRecNet

__all__ = ["LOSSES", "SCORES", "CausalSelfAttention", "SASRecConfig", "SASRecNet", "attention_mask", "next_item_loss"]
