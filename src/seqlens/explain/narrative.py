"""One sentence a user can read: "Recommended Heat because you recently watched Ronin (41%) and Fargo (22%)".

Percentages are each item's share of the positive attribution mass of the chosen method (an item seen
twice is cited once, with its positions' scores summed, and its latest time); deny-listed items are
never named and their share is reported as "other items". Only items that raised the score are reasons;
the item that lowered it most follows "despite" (signed methods only: the others cannot tell).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_VERB = "interacted with"

#: items below this share are not cited (the single best one always is, when anything is positive)
MIN_SHARE = 0.05

_UNITS = (
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("week", 7 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
)


@dataclass(frozen=True)
class Citation:
    """An item the narrative names: its title, its share (0..1) and seconds since the interaction (if known)."""

    title: str
    share: float
    age: float | None = None


def time_ago(seconds: float) -> str:
    """'moments ago', '1 day ago', '3 weeks ago': the largest unit that fits twice (once for days and smaller)."""
    if seconds < 0:
        return "later"  # an interaction after `now`: say so rather than print a negative age
    for unit, size in _UNITS:
        n = int(seconds // size)
        if n >= (2 if size > 86400 else 1):
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "moments ago"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.005 else "<1%"


def _cite(c: Citation) -> str:
    return f"{c.title} ({_percent(c.share)}{', ' + time_ago(c.age) if c.age is not None else ''})"


def narrative(
    recommended: str,
    cited: list[Citation],
    other_share: float = 0.0,
    verb: str = DEFAULT_VERB,
    signed: bool = True,
    against: Citation | None = None,
) -> str:
    """The sentence for a recommendation given the items to cite (most important first) and the hidden share.

    With a `signed` method the cited items raised the score ("because you ..."), and `against`, the item that
    lowered it most, is named after "despite"; an unsigned method only says where the model looked.
    """
    parts = [_cite(c) for c in cited]
    if other_share >= 0.005:
        parts.append(f"other items ({_percent(other_share)})")
    despite = f", despite {against.title}" if against is not None else ""
    if not signed:
        if not parts:
            return f"Recommended {recommended}"
        return f"Recommended {recommended}; the model looked most at {_join(parts)}"
    if not parts:
        return f"Recommended {recommended}; no item in your history raised its score{despite}"
    if not cited:
        return f"Recommended {recommended} because of {_join(parts)} you {verb}{despite}"
    return f"Recommended {recommended} because you recently {verb} {_join(parts)}{despite}"
