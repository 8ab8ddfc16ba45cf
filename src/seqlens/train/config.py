"""Training's hyper-parameters, declared without torch: `TrainConfig`, and which settings only change how a run
is shown or may change on resume.

They live apart from the training loop (`trainer.py`, which imports them from here; the names are still
importable there) so that reading them imports no torch: `seqlens train --help` makes one flag per
hyper-parameter from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqlens.nn.config import LOSSES
from seqlens.params import param


@dataclass
class TrainConfig:
    """The training hyper-parameters every neural model shares: the one place each is declared and documented."""

    loss: str = param(
        "ce",
        "Full-softmax cross-entropy ('ce'); sampled softmax with `n_negatives` (log-Q corrected) for large "
        "catalogues; the paper's binary cross-entropy with one negative ('bce'); gBCE.",
        choices=LOSSES,
    )
    n_negatives: int = param(256, "Negatives per step for the sampled losses.", minimum=1)
    epochs: int = param(200, "Most epochs to train; early stopping usually ends sooner.", minimum=1)
    patience: int = param(
        20, "Epochs without a better validation NDCG@10 before stopping (needs `valid` in `fit`).", minimum=0
    )
    batch_size: int = param(128, "Training sequences per step.", minimum=1)
    lr: float = param(
        2e-3,
        "Adam's learning rate. 2e-3 with `lr_patience=5` beat a constant 1e-3 on Beauty (3 seeds) and ML-1M.",
        minimum=0.0,
    )
    weight_decay: float = param(0.0, "Adam's L2 penalty.", minimum=0.0)
    lr_patience: int = param(
        5,
        "Halve the learning rate after this many epochs without a better validation score (0 keeps it constant).",
        minimum=0,
        legacy=0,
    )
    seed: int = param(
        0, "Seeds initialisation, batching and dropout: the same seed and data train the same model.", minimum=0
    )
    progress: bool = param(True, "Show a progress bar (one line per epoch when the output is not a terminal).")
    device: str = param(
        "auto",
        "Where training runs: 'auto' (a GPU when torch sees one, else the CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'. "
        "The fitted model is moved to the CPU, where recommending, explaining and serving run, and saved from there.",
    )
    precision: str = param(
        "fp32",
        "'bf16' runs the network's forward pass in bfloat16 (autocast; the loss, the weights and their updates stay "
        "float32): faster on GPUs with bfloat16 units; measure its accuracy against 'fp32' before relying on it.",
        choices=("fp32", "bf16"),
    )
    monitor: str = "ndcg@10"  # the validation metric early stopping follows (not a hyper-parameter)


#: settings that change how or where training runs, not what it learns: left out of a model's config hash
DISPLAY_ONLY = frozenset({"progress", "device"})
#: training settings a resume may change (it extends or shortens the run); any other must match the checkpoint
RESUMABLE = frozenset({"epochs", "patience"}) | DISPLAY_ONLY
