"""seqlens: attention-based sequential recommendation that explains itself.

The names below are imported on first use (PEP 562): `import seqlens` stays quick, and PyTorch and pandas
load only when a model or a log is touched.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from seqlens._version import __version__
from seqlens.errors import ArtifactError, DataError, SeqlensError

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports them
    from seqlens.data import (
        DATASETS,
        InteractionLog,
        ItemTable,
        Split,
        UserTable,
        dataset_available,
        leave_one_out,
        load_dataset,
        planted_log,
        read_interactions,
        read_items,
        read_log,
        read_movielens,
        read_sequences,
        read_users,
        synthetic_log,
        temporal_split,
        trigger_families,
    )
    from seqlens.eval import EvalResult, evaluate
    from seqlens.recommenders import STOSA, GRU4Rec, ItemKNN, MarkovChain, Popular, Recommender, SASRec
    from seqlens.recommenders import load_model as load

#: public name -> (module, name there)
_LAZY = {
    **{name: ("seqlens.data", name) for name in (
        "DATASETS", "InteractionLog", "ItemTable", "Split", "read_items", "dataset_available", "leave_one_out", "load_dataset", "planted_log",
        "read_interactions", "read_log", "read_movielens", "read_sequences", "synthetic_log", "temporal_split",
        "trigger_families", "UserTable", "read_users")},
    **{name: ("seqlens.eval", name) for name in ("EvalResult", "evaluate")},
    **{name: ("seqlens.recommenders", name) for name in (
        "GRU4Rec", "ItemKNN", "MarkovChain", "Popular", "Recommender", "SASRec", "STOSA")},
    "load": ("seqlens.recommenders", "load_model"),
}  # fmt: skip

__all__ = [
    "ArtifactError", "DataError", "EvalResult", "GRU4Rec", "InteractionLog", "ItemKNN", "MarkovChain", "Popular", "Recommender", "SASRec", "STOSA",
    "SeqlensError", "Split", "__version__", "evaluate", "leave_one_out", "load", "read_interactions", "read_log",
    "planted_log", "read_movielens", "read_sequences", "synthetic_log", "temporal_split", "trigger_families",
    "DATASETS", "dataset_available", "load_dataset", "ItemTable", "read_items", "UserTable", "read_users",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        if not name.startswith("_") and importlib.util.find_spec(f"seqlens.{name}") is not None:
            return importlib.import_module(f"seqlens.{name}")  # a subpackage (`seqlens.explain`), as before
        raise AttributeError(f"module 'seqlens' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
