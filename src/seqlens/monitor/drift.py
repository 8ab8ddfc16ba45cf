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
class Drift:
    """`divergence` and `thresholds` [windows x statistics] (threshold NaN where a window is not checked: the
    reference windows themselves), each statistic's `tests`, the `alerts` (one dict per window and statistic
    over its threshold: window, statistic, test, divergence, threshold, value) and the fixed `reference`
    windows ([] with a trailing reference or a baseline)."""

    divergence: pd.DataFrame
    thresholds: pd.DataFrame
    tests: dict[str, str]
    alerts: list[dict]
    reference: list[int]


def detect(
    windows: Windows, rules: list[Rule] | None = None, baseline: Windows | None = None, trailing: int | None = None
) -> Drift:
    """Compare windows with a reference, calibrate each statistic's threshold on that reference, list the alerts.

    The reference is, by default, the first windows (`windows.reference`; they are not checked themselves).
    With `trailing`, each window is compared with the `trailing` windows just before it instead: traffic
    that changes slowly (new users, longer histories) moves the reference along, while an abrupt change
    alerts (the first `trailing` windows are not checked). With a `baseline` (the same requests answered by
    the model in service), every window of `windows` (a candidate model's) is compared with all of the
    baseline's own same window (both answered the same requests, so traffic cancels out), thresholds
    calibrated on the baseline's window-to-window variation: a candidate whose attention departs from the
    served model's alerts before it is promoted.
    """
    if trailing is not None and (trailing < 3 or baseline is not None):
        raise DataError(f"trailing={trailing}: needs at least 3 windows, and no baseline")
    rules = rules if rules is not None else read_rules()
    starts = list(windows.scalars.index)
    if baseline is not None:
        source, plan = baseline, [(starts, list(baseline.scalars.index))]
    elif trailing is not None:
        source, plan = windows, [([s], starts[i - trailing : i]) for i, s in enumerate(starts) if i >= trailing]
    else:
        ref = windows.reference
        source, plan = windows, [([s for s in starts if s not in ref], ref)]
    tests = {
        **{name: "shift" for name in windows.scalars.columns if name in source.scalars and _rule_for(rules, name, "shift")},
        **{name: "psi" for name in windows.distributions if name in source.distributions and _rule_for(rules, name, "psi")},
    }  # fmt: skip
    divergence = pd.DataFrame(np.nan, index=windows.scalars.index, columns=list(tests))
    thresholds = divergence.copy()
    for checked, ref in plan:
        for name, test in tests.items():
            rule = _rule_for(rules, name, test)
            assert rule is not None
            if test == "shift":
                values, loo = _shift(windows.scalars[name].loc[checked], source.scalars[name].loc[ref])
            else:
                values, loo = _psi(windows.distributions[name].loc[checked], source.distributions[name].loc[ref])
            if baseline is not None:  # the same requests: each window against the served model's same window
                values = _paired(test, windows, baseline, name, checked)
            divergence.loc[checked, name] = values.to_numpy()
            thresholds.loc[checked, name] = _threshold(rule, loo)
    alerts = [
        {"window": int(start), "statistic": name, "test": tests[name], "divergence": float(divergence.at[start, name]),
         "threshold": float(thresholds.at[start, name]),
         "value": float(windows.scalars.at[start, name]) if name in windows.scalars else None}
        for start in starts for name in tests if divergence.at[start, name] > thresholds.at[start, name]
    ]  # fmt: skip
    reference = windows.reference if baseline is None and trailing is None else []
    return Drift(divergence, thresholds, tests, alerts, reference)


def _rule_for(rules: list[Rule], name: str, test: str) -> Rule | None:
    """The last rule of `test` whose pattern matches `name`, unless that rule switches the alert off."""
    matching = [r for r in rules if r.test == test and fnmatch.fnmatchcase(name, r.pattern)]
    return matching[-1] if matching and matching[-1].alert else None


def _threshold(rule: Rule, loo: np.ndarray) -> float:
    """max(floor, factor x the largest leave-one-out divergence of the reference windows)."""
    worst = float(np.nanmax(loo)) if len(loo) and np.isfinite(loo).any() else 0.0
    return max(rule.floor, rule.factor * worst)


def _shift(values: pd.Series, ref: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """|x - mean| / sd against the reference, and each reference window's against the others."""
    r = ref.to_numpy(np.float64)
    loo = np.array([abs(r[i] - np.delete(r, i).mean()) / _spread(np.delete(r, i)) for i in range(len(r))])
    return (values - r.mean()).abs() / _spread(r), loo


def _paired(test: str, candidate: Windows, served: Windows, name: str, checked: list) -> pd.Series:
    """Each window of the candidate against the same window of the served model: the shift in units of the
    served model's spread over windows, or the PSI between the two windows' shares."""
    if test == "shift":
        mine, theirs = candidate.scalars[name].loc[checked], served.scalars[name].loc[checked]
        return (mine - theirs).abs() / _spread(served.scalars[name].to_numpy(np.float64))
    mine_shares, their_shares = candidate.distributions[name].loc[checked], served.distributions[name].loc[checked]
    return pd.Series([_psi_of(p, q) for p, q in zip(mine_shares.to_numpy(), their_shares.to_numpy())], index=checked)


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
