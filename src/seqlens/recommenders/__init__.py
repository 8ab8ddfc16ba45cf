"""Recommenders with one interface: `fit(log, valid=None)`, `recommend(...)`, `save(dir)`; `load(dir)`."""

from typing import TYPE_CHECKING

from seqlens._lazy import lazy_names

if TYPE_CHECKING:  # imported on first use (seqlens/_lazy.py): importing one module imports no other
    from seqlens.recommenders.artifacts import load_model, save_model
    from seqlens.recommenders.base import NotFittedError, Recommender, as_log
    from seqlens.recommenders.gru4rec import GRU4Rec
    from seqlens.recommenders.itemknn import ItemKNN
    from seqlens.recommenders.markov import MarkovChain
    from seqlens.recommenders.neural import NextItemModel
    from seqlens.recommenders.popular import Popular
    from seqlens.recommenders.sasrec import SASRec
    from seqlens.recommenders.store import ModelStore, Version
    from seqlens.recommenders.stosa import STOSA

__all__ = [
    "GRU4Rec",
    "ItemKNN",
    "MarkovChain",
    "ModelStore",
    "NextItemModel",
    "NotFittedError",
    "Popular",
    "Recommender",
    "SASRec",
    "STOSA",
    "Version",
    "as_log",
    "load_model",
    "save_model",
]

__getattr__, __dir__ = lazy_names(__name__)
