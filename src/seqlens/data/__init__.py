"""Interaction data: the log type, readers, splits, padded batches and the synthetic generator."""

from typing import TYPE_CHECKING

from seqlens._lazy import lazy_names

if TYPE_CHECKING:  # imported on first use (seqlens/_lazy.py): importing one module imports no other
    from seqlens.data.codes import ContextCodes, UserCodes, ValueCodes, context_codes, user_codes
    from seqlens.data.datasets import DATASETS, dataset_available, load_dataset
    from seqlens.data.items import ItemCodes, ItemTable, item_codes, read_items
    from seqlens.data.log import ITEM, TIME, USER, InteractionLog
    from seqlens.data.readers import (
        FORMATS,
        read_interactions,
        read_log,
        read_movielens,
        read_movielens_titles,
        read_sequences,
    )
    from seqlens.data.sequences import PAD, Sequences
    from seqlens.data.splits import Split, leave_one_out, temporal_split
    from seqlens.data.synthetic import FAMILIES, PlantedLog, planted_log, synthetic_log, trigger_families
    from seqlens.data.users import UserTable, read_users

__all__ = [
    "ITEM", "PAD", "PlantedLog", "planted_log", "TIME", "USER", "InteractionLog", "Sequences", "Split", "leave_one_out",
    "read_interactions", "read_log", "FORMATS", "read_movielens", "read_movielens_titles", "read_sequences", "synthetic_log", "trigger_families", "FAMILIES",
    "temporal_split", "DATASETS", "dataset_available", "load_dataset", "ItemTable", "read_items", "ItemCodes", "item_codes",
    "UserTable", "read_users", "UserCodes", "user_codes", "ContextCodes", "context_codes", "ValueCodes",
]  # fmt: skip

__getattr__, __dir__ = lazy_names(__name__)
