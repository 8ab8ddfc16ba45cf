"""Recommenders with one interface: `fit(log, valid=None)`, `recommend(...)`, `save(dir)`; `load(dir)`."""

from seqlens.recommenders.artifacts import load_model, save_model
from seqlens.recommenders.base import NotFittedError, Recommender, as_log
from seqlens.recommenders.gru4rec import GRU4Rec
from seqlens.recommenders.itemknn import ItemKNN
from seqlens.recommenders.markov import MarkovChain
from seqlens.recommenders.popular import Popular
from seqlens.recommenders.sasrec import SASRec

__all__ = [
    "GRU4Rec",
    "ItemKNN",
    "MarkovChain",
    "NotFittedError",
    "Popular",
    "Recommender",
    "SASRec",
    "as_log",
    "load_model",
    "save_model",
]
