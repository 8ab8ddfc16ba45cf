"""Training: the shared loop (early stopping, progress, seeding) and resumable checkpoints."""

from seqlens.train.trainer import (
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    random_batches,
    seed_everything,
)

__all__ = ["TrainConfig", "Trainer", "TrainingInterrupted", "random_batches", "seed_everything"]
