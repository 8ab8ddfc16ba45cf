"""A deny-list: items that may inform the model but are never named as a reason for a recommendation.

Hidden items stay in the history the model reads (removing them would change the recommendation); an
explanation shows them as `OTHER` and reports their summed share as "other items". The list applies to
the history being explained, not to the recommended item: filtering what is recommended is the job of
the caller (or the service) before it asks for an explanation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from seqlens.data.log import ITEM
from seqlens.errors import DataError

#: what a deny-listed item is called in explanations, tables, plots and reports
OTHER = "other"


@dataclass(frozen=True)
class DenyList:
    """External item ids never named in an explanation; build one from ids and/or attribute values."""

    items: frozenset[str] = frozenset()

    def __contains__(self, item: object) -> bool:
        return str(item) in self.items

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def build(
        cls,
        items: Iterable = (),
        attributes: Mapping[str, Iterable[str]] | None = None,
        metadata: pd.DataFrame | None = None,
        sep: str = "|",
    ) -> DenyList:
        """Deny `items` plus every item whose `metadata` column holds one of the listed attribute values.

        `attributes` maps a column of `metadata` (an item table with `item_id`, e.g. `log.items`) to the
        values to hide, e.g. {"genres": ["Horror"]}; multi-valued cells are split on `sep` ("Action|Horror").
        """
        if isinstance(items, (str, bytes)):
            raise DataError(f"deny-list items must be a list of item ids, got the string {items!r}")
        denied = {str(i) for i in items}
        for column, values in (attributes or {}).items():
            if metadata is None:
                raise DataError(f"deny-list attribute {column!r} needs item metadata (e.g. log.items) to resolve")
            if column not in metadata.columns or ITEM not in metadata.columns:
                raise DataError(
                    f"deny-list attribute {column!r} is not a column of the item metadata "
                    f"(columns: {', '.join(map(str, metadata.columns))})"
                )
            wanted = {str(v) for v in ([values] if isinstance(values, str) else values)}
            cells = metadata[column].astype(str).str.split(sep, regex=False)
            hit = cells.map(lambda parts, wanted=wanted: bool(wanted.intersection(p.strip() for p in parts)))
            denied |= set(metadata.loc[hit.to_numpy(), ITEM].astype(str))
        return cls(frozenset(denied))


def as_deny_list(deny: DenyList | Iterable | None) -> DenyList:
    """Accept a DenyList, an iterable of item ids, or None (nothing hidden)."""
    if deny is None:
        return DenyList()
    return deny if isinstance(deny, DenyList) else DenyList.build(deny)
