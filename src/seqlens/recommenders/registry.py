"""The recommenders by name: the classes defined so far, the library's own, and the neural ones' hyper-parameters.

`MODELS` maps a class name to the class (`Recommender.__init_subclass__` adds each one; `Recommender.registry`
is this same dict). A saved model's config.json names its class, and `artifacts.load_model` rebuilds it with
`model_class`, which imports the library's module of that class when it is not defined yet (importing
`seqlens.recommenders` imports none of them). A module of its own, so that base.py (which saves through
artifacts.py) and artifacts.py both use it without importing each other.

`SCHEMAS` declares each neural recommender's hyper-parameters from the torch-free configs (`nn/config.py`,
`train/config.py`): `seqlens train --help` makes its flags from them without importing torch, and each class
reads its `schema` from here.
"""

from __future__ import annotations

import importlib
from typing import Any

from seqlens.nn.config import GRU4RecConfig, SASRecConfig, STOSAConfig
from seqlens.params import Schema
from seqlens.train.config import TrainConfig

#: every Recommender subclass by class name (filled as the classes are defined)
MODELS: dict[str, type[Any]] = {}

#: the library's recommenders by class name: the module that defines each
LIBRARY = {
    "SASRec": "seqlens.recommenders.sasrec",
    "STOSA": "seqlens.recommenders.stosa",
    "GRU4Rec": "seqlens.recommenders.gru4rec",
    "Popular": "seqlens.recommenders.popular",
    "MarkovChain": "seqlens.recommenders.markov",
    "ItemKNN": "seqlens.recommenders.itemknn",
}

#: the neural recommenders' hyper-parameters by class name
SCHEMAS = {
    "SASRec": Schema(SASRecConfig, TrainConfig),
    # a constant learning rate of 1e-3, the GRU4Rec setting
    "GRU4Rec": Schema(GRU4RecConfig, TrainConfig, defaults={"lr": 1e-3, "lr_patience": 0}),
    # STOSA's Beauty training: BPR on distances, a constant learning rate of 1e-3, batches of 256
    "STOSA": Schema(
        STOSAConfig, TrainConfig, defaults={"loss": "bpr", "lr": 1e-3, "lr_patience": 0, "batch_size": 256}
    ),
}


def model_class(name: str) -> type[Any]:
    """The recommender class `name`: one defined so far, else the library's, its module imported (and torch with
    it). KeyError if it is neither."""
    if name not in MODELS and name in LIBRARY:
        importlib.import_module(LIBRARY[name])
    return MODELS[name]
