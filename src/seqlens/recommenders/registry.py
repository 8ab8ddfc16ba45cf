"""The recommenders by name: every class defined so far, and the neural ones known without importing them.

`MODELS` maps a class name to the class (`Recommender.__init_subclass__` adds each one; `Recommender.registry`
is this same dict). A saved model's config.json names its class, and `artifacts.load_model` rebuilds it from
here: a module of its own, so that base.py (which saves through artifacts.py) and artifacts.py both use it
without importing each other.

`NEURAL` names the neural recommenders with the module that defines each and its hyper-parameter schema,
declared here from the torch-free configs (`nn/config.py`, `train/config.py`): `seqlens train --help` makes
its flags from them without importing torch, and each class reads its `schema` from here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from seqlens.nn.config import GRU4RecConfig, SASRecConfig
from seqlens.params import Schema
from seqlens.train.config import TrainConfig

#: every Recommender subclass by class name (filled as the classes are defined)
MODELS: dict[str, type[Any]] = {}


@dataclass(frozen=True)
class Neural:
    """A neural recommender known without importing its module (which imports torch)."""

    name: str  # the class name, as config.json records it
    module: str  # where the class is defined
    schema: Schema  # its hyper-parameters

    def import_class(self) -> type[Any]:
        """The class, its module imported (and torch with it)."""
        importlib.import_module(self.module)
        return MODELS[self.name]


NEURAL = {
    model.name: model
    for model in (
        Neural("SASRec", "seqlens.recommenders.sasrec", Schema(SASRecConfig, TrainConfig)),
        # a constant learning rate of 1e-3, the GRU4Rec setting
        Neural(
            "GRU4Rec",
            "seqlens.recommenders.gru4rec",
            Schema(GRU4RecConfig, TrainConfig, defaults={"lr": 1e-3, "lr_patience": 0}),
        ),
    )
}
