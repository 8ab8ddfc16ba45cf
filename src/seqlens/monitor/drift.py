"""Drift of every window's statistics from a reference, and alerts whose thresholds the reference calibrates.

Each statistic gets a divergence suited to it:
- a scalar (a window mean): the standardised shift |x - m| / s, with m and s the mean and standard deviation
  of the reference windows' values;
- a distribution (shares per bin): the population stability index PSI = sum (p - q) ln(p / q) against the
  reference windows' pooled shares q.
A fixed threshold would either fire on noise or miss real shifts, because how much a statistic moves from
week to week differs by statistic and data. So each threshold comes from the reference itself: every
reference window is compared with the others (leave-one-out), and the threshold is `factor` times the
largest of those divergences, and never below `floor`. The rules (which statistics, which test, factor and
floor) are read from TOML; `DEFAULT_RULES` ships with the package.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqlens.errors import DataError
from seqlens.monitor.windows import Windows

DEFAULT_RULES = Path(__file__).with_name("rules.toml")
TESTS = ("shift", "psi")
#: added to every share before the PSI's logarithm (an empty bin would make it infinite)
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class Rule:
    """Statistics matching `pattern` (fnmatch, e.g. "last_mass@*") are checked with `test`; a window alerts
    when its divergence exceeds max(floor, factor x the largest leave-one-out divergence of the reference)."""

    pattern: str
    test: str
    factor: float
    floor: float
    alert: bool = True


def read_rules(path: str | Path = DEFAULT_RULES) -> list[Rule]:
    """The `[[rule]]` tables of a TOML file (keys: statistic, test, factor, floor, alert), in order; later rules
    override earlier ones for the statistics they match, and `alert = false` leaves those unchecked."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the alert rules ({err})") from err
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"{path}: not valid TOML ({err})") from err
    rules = []
    for n, entry in enumerate(raw.get("rule", []), start=1):
        unknown = set(entry) - {"statistic", "test", "factor", "floor", "alert"}
        if unknown or "statistic" not in entry or entry.get("test") not in TESTS:
            raise DataError(
                f'{path}: rule {n} needs statistic = "pattern" and test = one of {", ".join(TESTS)}, and only '
                f"factor, floor and alert besides (got {sorted(entry)})"
            )
        factor, floor = float(entry.get("factor", 2.0)), float(entry.get("floor", 0.0))
        if factor <= 0 or floor < 0:
            raise DataError(f"{path}: rule {n}: factor must be > 0 and floor >= 0 (got {factor}, {floor})")
        rules.append(Rule(str(entry["statistic"]), str(entry["test"]), factor, floor, bool(entry.get("alert", True))))
    if not rules:
        raise DataError(f"{path}: no [[rule]] tables")
    return rules


@dataclass(frozen=True)
class Check:
    """One statistic's calibrated check: its test, the reference windows' divergences and the threshold."""

    statistic: str
    test: str
    threshold: float
    reference_max: float


@dataclass(frozen=True)
class Drift:
    """`divergence` [windows x statistics], the calibrated `checks`, and the `alerts` (one dict per window
    and statistic over its threshold: window, statistic, value, threshold, divergence)."""

    divergence: pd.DataFrame
    checks: dict[str, Check]
    alerts: list[dict]
    reference: list[int]


def detect(windows: Windows, rules: list[Rule] | None = None, baseline: Windows | None = None) -> Drift:
    """Compare every window with the reference windows, calibrate each statistic's threshold on them, and
    list the alerts (reference windows never alert).

    With a `baseline` (the same requests answered by the model in service), every window of `windows` (a
    candidate model's) is compared with all of the baseline's windows instead, thresholds calibrated on the
    baseline's own window-to-window variation: a candidate whose attention departs from the served model's
    alerts before it is promoted.
    """
    rules = rules if rules is not None else read_rules()
    source = baseline if baseline is not None else windows
    ref = list(source.scalars.index) if baseline is not None else windows.reference
    divergence: dict[str, pd.Series] = {}
    checks: dict[str, Check] = {}
    for name in windows.scalars.columns:
        rule = _rule_for(rules, name, "shift")
        if rule is not None and name in source.scalars:
            divergence[name], loo = _shift(windows.scalars[name], source.scalars[name].loc[ref])
            checks[name] = _check(name, rule, loo)
    for name, shares in windows.distributions.items():
        rule = _rule_for(rules, name, "psi")
        if rule is not None and name in source.distributions:
            divergence[name], loo = _psi(shares, source.distributions[name].loc[ref])
            checks[name] = _check(name, rule, loo)
    table = pd.DataFrame(divergence, index=windows.scalars.index)
    alerts = [
        {"window": int(start), "statistic": name, "divergence": float(table.at[start, name]),
         "threshold": checks[name].threshold, "test": checks[name].test,
         "value": float(windows.scalars.at[start, name]) if name in windows.scalars else None}
        for start in table.index if baseline is not None or start not in ref
        for name in table.columns if table.at[start, name] > checks[name].threshold
    ]  # fmt: skip
    return Drift(table, checks, alerts, [] if baseline is not None else ref)


def _rule_for(rules: list[Rule], name: str, test: str) -> Rule | None:
    """The last rule of `test` whose pattern matches `name`, unless that rule switches the alert off."""
    matching = [r for r in rules if r.test == test and fnmatch.fnmatchcase(name, r.pattern)]
    return matching[-1] if matching and matching[-1].alert else None


def _check(name: str, rule: Rule, loo: np.ndarray) -> Check:
    worst = float(np.nanmax(loo)) if len(loo) and np.isfinite(loo).any() else 0.0
    return Check(name, rule.test, max(rule.floor, rule.factor * worst), worst)


def _shift(values: pd.Series, ref: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """|x - mean| / sd against the reference, and each reference window's against the others."""
    r = ref.to_numpy(np.float64)
    loo = np.array([abs(r[i] - np.delete(r, i).mean()) / _spread(np.delete(r, i)) for i in range(len(r))])
    return (values - r.mean()).abs() / _spread(r), loo


def _spread(x: np.ndarray) -> float:
    """The standard deviation, kept above zero so that a constant statistic's first change is a divergence."""
    return max(float(np.std(x, ddof=1)), 1e-12)


def _psi(shares: pd.DataFrame, ref: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    """PSI of every window against the reference's pooled shares, and each reference window's against the others."""
    r = ref.to_numpy(np.float64)
    loo = np.array([_psi_of(r[i], np.delete(r, i, axis=0).mean(0)) for i in range(len(r))])
    q = r.mean(0)
    return pd.Series([_psi_of(p, q) for p in shares.to_numpy(np.float64)], index=shares.index), loo


def _psi_of(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p + PSI_EPSILON, q + PSI_EPSILON
    p, q = p / p.sum(), q / q.sum()
    return float(((p - q) * np.log(p / q)).sum())
