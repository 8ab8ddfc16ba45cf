"""The networks' hyper-parameters, declared without torch: `SASRecConfig`, `GRU4RecConfig`, and the names their
choices are made of.

A network's config is where each of its hyper-parameters is declared, validated and documented (`params.py`
derives the rest from it). The declarations live apart from the networks so that reading them imports no
torch: `seqlens train --help` makes one flag per hyper-parameter from them. The networks' modules import
them from here, and every name is still importable where it was declared before (`nn.sasrec.SASRecConfig`,
`nn.attention.SCORES`, `nn.losses.LOSSES`, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, cast

from seqlens.params import param, schema_of

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: how a query scores a key (`attention.py`)
SCORES = ("scaled_dot", "dot", "additive")
#: the AWRSR attention weight refinements (`attention.py`); the stochastic ones were made for STOSA
REFINEMENTS = ("none", "simple", "value", "additive", "stochastic", "stochastic_additive")
#: what SASRec's learned position embeddings count from (`sasrec.py`)
POSITIONS = ("from_end", "from_start", "none")
#: what SASRec reads of the interactions' timestamps (`sasrec.py`)
TIMES = ("none", "interval")
#: time-gap buckets (`time="interval"`, `time_bias`): 0 padding, 1 unknown (no earlier item in the window, or no
#: timestamps), then one per doubling of the gap in seconds (2: the same second), the last for every longer gap
INTERVAL_BUCKETS = 34
#: the next-item losses (`losses.py`), chosen by `TrainConfig.loss`
LOSSES = ("ce", "sampled", "bce", "gbce", "bpr")


class AttentionBlocks:
    """What the attention networks' configs share: validation on construction, the rules on `dim`, `heads` and
    `refine_layers`, and which blocks refine (the fields are each config's own, declared there)."""

    dim: int
    heads: int
    layers: int
    refinement: str
    refine_layers: list[int] | None

    def __post_init__(self) -> None:
        schema = schema_of(type(self))
        values = {k: v for k, v in self.to_dict().items() if k in schema.specs}  # n_items comes from the data
        schema.validate(values, where=f"{type(self).__name__}: ")

    def to_dict(self) -> dict:
        return asdict(cast("DataclassInstance", self))  # every subclass is a dataclass

    @staticmethod
    def check_blocks(p: dict) -> None:
        if p["dim"] % p["heads"]:
            raise ValueError(f"dim={p['dim']} must be divisible by heads={p['heads']}")
        bad = [i for i in p["refine_layers"] or [] if not -p["layers"] <= i < p["layers"]]
        if bad:
            raise ValueError(
                f"refine_layers {bad} out of range for layers={p['layers']} (use 0..{p['layers'] - 1} or -1)"
            )

    def refines(self, layer: int) -> bool:
        if self.refinement == "none":
            return False
        if self.refine_layers is None:
            return True
        return layer in {i % self.layers for i in self.refine_layers}


@dataclass
class SASRecConfig(AttentionBlocks):
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
    attention_dropout: float | None = param(
        None,
        "Dropout on the attention weights, in [0, 1), apart from `dropout`; None = `dropout`, as in the paper.",
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
    relative_bias: bool = param(
        False,
        "Add a learned bias per head and query-key distance to the attention scores (T5-style, one per "
        "distance up to max_len, starting at zero): attention can prefer recent or distant items by distance.",
    )
    attention_entropy: float = param(
        0.0,
        "Weight of an attention entropy penalty: the training loss adds it times the mean entropy (nats) of the "
        "attention rows that multiply the values (real queries, every layer and head). > 0 sharpens attention, "
        "< 0 spreads it; 0 = off.",
    )
    time: str = param(
        "none",
        "What the model reads of the timestamps: 'interval' adds to each position an embedding of the time since "
        "the previous interaction in the window, in log2-second buckets (the first item, and histories given "
        "without timestamps, get an 'unknown' one); 'none' reads only the order.",
        choices=TIMES,
    )
    time_bias: bool = param(
        False,
        "Add a learned attention score per head and log2-second bucket of the time between each query item and key "
        "item (TiSASRec's relative time intervals, as one score per head and bucket, starting at zero): attention "
        "can prefer items of the same session or day over older ones, whatever their positions. Reads the "
        "timestamps, as time='interval' does (histories given without them: every gap unknown).",
    )
    features: list[str] | None = param(
        None,
        "Item attribute columns the model reads (of the table `log.with_items(seqlens.read_items(...))` "
        "attaches): each item is its id embedding plus its attribute values' embeddings (multi-valued ones "
        "averaged), on the input and the scoring side, so items of the table that training never saw (cold "
        "items) are ranked by their attributes. None = item ids only.",
    )
    user_features: list[str] | None = param(
        None,
        "User attribute columns the model reads (of the table `log.with_users(seqlens.read_users(...))` attaches, "
        "such as gender, age and occupation): the sum of their values' embeddings is added to the state every "
        "next item is scored from, so it shifts scores the same way whatever the history. Users the table lacks, "
        "and ad-hoc histories given no attributes, read as unknown. None = no user attributes.",
    )
    context: list[str] | None = param(
        None,
        "Per-event context columns the model reads of the request (kept by `read_interactions(..., context=[...])`, "
        "such as device or channel): the sum of their values' embeddings is added to the state the next item is "
        "scored from, like user attributes. Training reads each predicted event's own values; `recommend(..., "
        "context=...)` and evaluation read the request's (else unknown). None = no context.",
    )
    id_dropout: float = param(
        0.2,
        "With `features`, the share of training items whose id embedding is left out of the scoring side at each "
        "step, so that items are also ranked by their attributes alone, as cold items are. Without it, cold items, "
        "never a negative in training, were over-scored: 9 of Beauty's took a top-10 place for 14% of users. "
        "Not tuned yet.",
        minimum=0.0,
        below=1.0,
    )

    @classmethod
    def check(cls, p: dict) -> None:
        """The rules that tie parameters together (each value alone was checked against its declaration)."""
        cls.check_blocks(p)
        if p["features"] is not None and not p["features"]:
            raise ValueError("features=[] names no attribute column; leave it None for item ids only")
        if p["features"] is not None and len(set(p["features"])) < len(p["features"]):
            raise ValueError(f"features={p['features']} names a column twice")
        for name in ("user_features", "context"):
            if p[name] is not None and (not p[name] or len(set(p[name])) < len(p[name])):
                raise ValueError(f"{name}={p[name]} must name distinct columns (None: none)")
        if p["rotary"] and (p["score"] == "additive" or (p["dim"] // p["heads"]) % 2):
            raise ValueError(
                f"rotary=True needs a dot-product score and an even dim/heads (score={p['score']!r}, "
                f"dim/heads={p['dim'] // p['heads']})"
            )


@dataclass
class STOSAConfig(AttentionBlocks):
    """STOSA's network hyper-parameters (Fan et al., WWW 2022); defaults are its Beauty configuration."""

    n_items: int  # from the data, not a hyper-parameter
    max_len: int = param(
        100, "How many of the most recent items the model reads (STOSA's Beauty setting: 100).", minimum=1
    )
    dim: int = param(64, "Width of the mean and of the covariance embeddings.", minimum=1)
    layers: int = param(1, "Wasserstein self-attention blocks.", minimum=1)
    heads: int = param(4, "Attention heads per block; `dim` must be divisible by it.", minimum=1)
    dropout: float = param(
        0.3,
        "Dropout on embeddings and after each dense layer, in [0, 1) (attention weights: none).",
        minimum=0.0,
        below=1.0,
    )
    pvn_weight: float = param(
        0.005,
        "Weight of the positive-vs-negative term, mean(max(0, d(history, target) - d(target, negative))), added to "
        "the loss: the target should be nearer the history than a negative is to the target.",
        minimum=0.0,
    )
    refinement: str = param(
        "none",
        "AWRSR attention weight refinement of the Wasserstein attention (`stochastic`: rows as Gaussians, "
        "attended by Wasserstein distance).",
        choices=REFINEMENTS,
    )
    rank: int = param(32, "Dimension r of AWRSR's correlation space.", minimum=1)
    refine_layers: list[int] | None = param(
        None, "The blocks that refine (negative = from the end, e.g. [-1]); None = all."
    )

    @classmethod
    def check(cls, p: dict) -> None:
        cls.check_blocks(p)


@dataclass
class GRU4RecConfig:
    """GRU4Rec's network hyper-parameters: the one place each is declared, validated and documented."""

    n_items: int  # from the data, not a hyper-parameter
    max_len: int = param(50, "How many of the most recent items the GRU reads.", minimum=1)
    dim: int = param(64, "Width of item embeddings and of the GRU's hidden state.", minimum=1)
    layers: int = param(1, "Stacked GRU layers.", minimum=1)
    dropout: float = param(0.2, "Dropout on embeddings (and between GRU layers), in [0, 1).", minimum=0.0, below=1.0)

    def to_dict(self) -> dict:
        return asdict(self)
