"""Training: the shared loop (early stopping, progress, seeding) and resumable checkpoints."""

from typing import TYPE_CHECKING

from seqlens._lazy import lazy_names

if TYPE_CHECKING:  # imported on first use (seqlens/_lazy.py): importing one module imports no other
    from seqlens.train.config import TrainConfig
    from seqlens.train.trainer import Trainer, TrainingInterrupted, random_batches, seed_everything

__all__ = ["TrainConfig", "Trainer", "TrainingInterrupted", "random_batches", "seed_everything"]

__getattr__, __dir__ = lazy_names(__name__)
