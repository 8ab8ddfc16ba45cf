"""seqlens: attention-based sequential recommendation that explains itself."""

from seqlens._version import __version__
from seqlens.data import (
    DATASETS,
    InteractionLog,
    Split,
    dataset_available,
    leave_one_out,
    load_dataset,
    planted_log,
    read_interactions,
    read_log,
    read_movielens,
    read_sequences,
    synthetic_log,
    temporal_split,
    trigger_families,
)
from seqlens.errors import ArtifactError, DataError, SeqlensError
from seqlens.eval import EvalResult, evaluate
from seqlens.recommenders import GRU4Rec, ItemKNN, MarkovChain, Popular, Recommender, SASRec
from seqlens.recommenders import load_model as load

__all__ = [
    "ArtifactError", "DataError", "EvalResult", "GRU4Rec", "InteractionLog", "ItemKNN", "MarkovChain", "Popular", "Recommender", "SASRec",
    "SeqlensError", "Split", "__version__", "evaluate", "leave_one_out", "load", "read_interactions", "read_log",
    "planted_log", "read_movielens", "read_sequences", "synthetic_log", "temporal_split", "trigger_families",
    "DATASETS", "dataset_available", "load_dataset",
]  # fmt: skip
