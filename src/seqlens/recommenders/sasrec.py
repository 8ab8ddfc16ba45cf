"""SASRec as an estimator: `fit` on a log with early stopping on a validation log, `recommend`, `save`."""

from __future__ import annotations

from seqlens.errors import DataError
from seqlens.nn.attention import REFINEMENTS, SCORES
from seqlens.nn.sasrec import POSITIONS, SASRecConfig, SASRecNet
from seqlens.recommenders.neural import NextItemModel


class SASRec(NextItemModel):
    """Self-attentive sequential recommender (Kang & McAuley 2018) with a choice of losses.

    The defaults are the ones measured on Amazon Beauty with full-softmax cross-entropy (docs/benchmarks.md).

    Parameters
    ----------
    max_len : int, default 50
        How many of the most recent items the model reads. Raise it for long, dense histories (MovieLens:
        200); cost grows with its square.
    dim : int, default 64
        Width of item embeddings and hidden states.
    layers : int, default 2
        Self-attention blocks.
    heads : int, default 1
        Attention heads per block; `dim` must be divisible by it.
    dropout : float, default 0.5
        Dropout on embeddings, attention and feed-forward. 0.5 suits sparse data (Amazon); 0.2 dense (MovieLens).
    ffn_dim : int or None, default None
        Width of the point-wise feed-forward layer; None = `dim`, as in the paper.
    score : {"scaled_dot", "dot", "additive"}, default "scaled_dot"
        How a query scores a key.
    refinement : {"none", "simple", "value", "additive"}, default "none"
        AWRSR attention weight refinement (docs/awrsr.md: measured, no gain over plain SASRec so far).
    rank : int, default 32
        Dimension of AWRSR's correlation space.
    refine_layers : list of int or None, default None
        The blocks that refine (negative = from the end, e.g. [-1]); None = all.
    positions : {"from_end", "from_start", "none"}, default "from_end"
        Learned position embeddings counted from the most recent item or from the oldest one read, or none.
    rotary : bool, default False
        Rotate queries and keys by position (RoPE), so attention sees distances; with `positions="none"` it
        was better on MovieLens-1M and worse on Beauty.
    loss : {"ce", "sampled", "bce", "gbce"}, default "ce"
        Full-softmax cross-entropy; sampled softmax with `n_negatives` (log-Q corrected) for large catalogues;
        the paper's binary cross-entropy with one negative; gBCE.
    n_negatives : int, default 256
        Negatives per step for the sampled losses.
    epochs : int, default 200
        Most epochs to train; early stopping usually ends sooner.
    patience : int, default 20
        Epochs without a better validation NDCG@10 before stopping (needs `valid` in `fit`).
    batch_size : int, default 128
        Training sequences per step.
    lr : float, default 2e-3
        Adam's learning rate. 2e-3 with `lr_patience=5` beat a constant 1e-3 on Beauty (3 seeds) and ML-1M.
    weight_decay : float, default 0.0
        Adam's L2 penalty.
    lr_patience : int, default 5
        Halve the learning rate after this many epochs without a better validation score (0 keeps it constant).
    seed : int, default 0
        Seeds initialisation, batching and dropout: the same seed and data train the same model.
    progress : bool, default True
        Show a progress bar (one line per epoch when the output is not a terminal).
    """

    def __init__(
        self,
        max_len: int = 50,
        dim: int = 64,
        layers: int = 2,
        heads: int = 1,
        dropout: float = 0.5,
        ffn_dim: int | None = None,
        score: str = "scaled_dot",
        refinement: str = "none",
        rank: int = 32,
        refine_layers: list[int] | None = None,
        positions: str = "from_end",
        rotary: bool = False,
        loss: str = "ce",
        n_negatives: int = 256,
        epochs: int = 200,
        patience: int = 20,
        batch_size: int = 128,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        lr_patience: int = 5,
        seed: int = 0,
        progress: bool = True,
    ):
        self.max_len, self.dim, self.layers, self.heads, self.dropout = max_len, dim, layers, heads, dropout
        self.ffn_dim = ffn_dim
        self.refinement, self.rank = refinement, rank
        self.refine_layers = None if refine_layers is None else [int(i) for i in refine_layers]
        self.positions, self.rotary = positions, rotary
        self.score, self.loss, self.n_negatives = score, loss, n_negatives
        self.epochs, self.patience, self.batch_size, self.lr = epochs, patience, batch_size, lr
        self.weight_decay, self.lr_patience, self.seed, self.progress = weight_decay, lr_patience, seed, progress
        self._validate_params()

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.score not in SCORES:
            raise DataError(f"score={self.score!r}; choose one of {', '.join(SCORES)}")
        self._require_int("heads")
        if self.positions not in POSITIONS:
            raise DataError(f"positions={self.positions!r}; choose one of {', '.join(POSITIONS)}")
        if self.refinement not in REFINEMENTS:
            raise DataError(f"refinement={self.refinement!r}; choose one of {', '.join(REFINEMENTS)}")
        self._require_int("rank")
        bad = [i for i in self.refine_layers or [] if not -self.layers <= i < self.layers]
        if bad:
            raise DataError(
                f"refine_layers {bad} out of range for layers={self.layers} (use 0..{self.layers - 1} or -1)"
            )
        if self.dim % self.heads:
            raise DataError(f"dim={self.dim} must be divisible by heads={self.heads}")
        if not isinstance(self.rotary, bool):
            raise DataError(f"rotary={self.rotary!r} must be True or False")
        if self.rotary and (self.score == "additive" or (self.dim // self.heads) % 2):
            raise DataError(
                f"rotary=True needs a dot-product score and an even dim/heads (score={self.score!r}, "
                f"dim/heads={self.dim // self.heads})"
            )

    def explain(self, query=None, **options):
        """Attribute a recommendation to the history: see `seqlens.explain.explain` (methods, narrative, privacy)."""
        from seqlens.explain import explain  # imported here: explain depends on recommenders, not the reverse

        return explain(self, query, **options)

    def explain_batch(self, users=None, histories=None, items=None, **options):
        """Explanations for many users at once: see `seqlens.explain.explain_batch`."""
        from seqlens.explain import explain_batch

        return explain_batch(self, users, histories, items, **options)

    def _build_net(self) -> SASRecNet:
        return SASRecNet(
            SASRecConfig(
                n_items=self.n_items_, max_len=self.max_len, dim=self.dim, layers=self.layers, heads=self.heads,
                dropout=self.dropout, ffn_dim=self.ffn_dim, score=self.score,
                refinement=self.refinement, rank=self.rank, refine_layers=self.refine_layers,
                positions=self.positions, rotary=self.rotary,
            )
        )  # fmt: skip
