"""One sentence a user can read: "Recommended Heat because you recently watched Ronin (41%) and Fargo (22%)".

Percentages are each item's share of the positive attribution mass of the chosen method (an item seen
twice is cited once, with its positions' shares summed, and its latest time); deny-listed items are
never named and their share is reported as "other items".
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


def narrative(recommended: str, cited: list[Citation], other_share: float = 0.0, verb: str = DEFAULT_VERB) -> str:
    """The sentence for a recommendation given the items to cite (most important first) and the hidden share."""
    parts = [f"{c.title} ({_percent(c.share)}{', ' + time_ago(c.age) if c.age is not None else ''})" for c in cited]
    if other_share >= 0.005:
        parts.append(f"other items ({_percent(other_share)})")
    if not parts:
        return f"Recommended {recommended}; no item in your history raised its score"
    if not cited:
        return f"Recommended {recommended} because of {_join(parts)} you {verb}"
    return f"Recommended {recommended} because you recently {verb} {_join(parts)}"
