import numpy as np
import pandas as pd
import pytest

from seqlens.errors import DataError
from seqlens.monitor import Requests, answer, detect, read_rules, requests_from_log, summarize
from seqlens.monitor.drift import Rule
from seqlens.monitor.windows import Windows

WEEK = 7 * 86400


def _windows(values: list[float], shares: list[list[float]], reference: int = 6) -> Windows:
    index = pd.Index([i * WEEK for i in range(len(values))], name="start")
    scalars = pd.DataFrame({"requests": 100, "last_mass@0": values}, index=index)
    return Windows(scalars, {"latest_by_popularity": pd.DataFrame(shares, index=index)}, "7d", list(index[:reference]))


RULES = [Rule("*", "shift", 2.0, 3.0), Rule("*", "psi", 2.0, 0.05), Rule("requests", "shift", 1.0, 0.0, alert=False)]


def test_a_shift_far_outside_the_references_own_variation_alerts_and_noise_does_not():
    rng = np.random.default_rng(0)
    values = list(0.3 + 0.01 * rng.standard_normal(12))
    values[9] = 0.6  # 30 standard deviations
    shares = [[0.5, 0.5]] * 12
    drift = detect(_windows(values, shares), RULES)
    assert [(a["window"], a["statistic"]) for a in drift.alerts] == [(9 * WEEK, "last_mass@0")]
    thresholds = drift.thresholds["last_mass@0"]
    assert thresholds.iloc[:6].isna().all() and thresholds.iloc[6:].nunique() == 1  # the reference is not checked
    assert thresholds.iloc[-1] >= 3.0  # the floor
    assert "requests" not in drift.tests  # alert = false


def test_a_changed_distribution_alerts_through_its_psi():
    shares = [[0.5, 0.5]] * 10 + [[0.9, 0.1]] * 2
    drift = detect(_windows([0.3] * 12, shares), RULES)
    assert {a["window"] for a in drift.alerts if a["statistic"] == "latest_by_popularity"} == {10 * WEEK, 11 * WEEK}


def test_rules_in_toml_and_their_errors(tmp_path):
    assert {r.test for r in read_rules()} == {"shift", "psi"}  # the shipped defaults
    good = tmp_path / "rules.toml"
    good.write_text('[[rule]]\nstatistic = "last_mass@*"\ntest = "shift"\nfactor = 3\nfloor = 2\n')
    assert read_rules(good) == [Rule("last_mass@*", "shift", 3.0, 2.0)]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nstatistic = "x"\ntest = "ks"\n')
    with pytest.raises(DataError, match=r"bad.toml: rule 1 needs .*test = one of shift, psi"):
        read_rules(bad)
    bad.write_text("[[rule]\n")
    with pytest.raises(DataError, match="bad.toml: not valid TOML"):
        read_rules(bad)


def test_histories_cut_to_their_latest_item_alert_from_the_first_cut_window_only(fitted, synth_log):
    requests = requests_from_log(fitted, synth_log, "3d", per_window=60, seed=0)
    since = int(np.quantile(requests.times, 0.75))
    cut = [h[-1:] if t >= since else h for h, t in zip(requests.histories, requests.times)]
    windows = summarize(fitted, answer(fitted, Requests(requests.times, requests.users, cut)), "3d", min_requests=20)
    drift = detect(windows)
    first_cut = min(s for s in windows.scalars.index if s >= since)
    alerted = {a["window"] for a in drift.alerts}
    assert first_cut + 3 * 86400 in alerted  # the first window wholly after the cut
    assert not {s for s in alerted if s + 3 * 86400 <= since}  # no window before it


def test_too_few_windows_for_a_reference_is_an_error(fitted, synth_log):
    answers = answer(fitted, requests_from_log(fitted, synth_log, "60d", per_window=50))
    with pytest.raises(DataError, match="too few for a reference of 8 windows"):
        summarize(fitted, answers, "60d", min_requests=1)


def test_a_trailing_reference_follows_slow_change_and_catches_an_abrupt_one():
    slow = list(np.linspace(0.2, 0.6, 30) + 0.002 * np.random.default_rng(2).standard_normal(30))
    slow[25] += 0.2  # an abrupt jump late on
    shares = [[0.5, 0.5]] * 30
    fixed = detect(_windows(slow, shares), RULES)
    trailing = detect(_windows(slow, shares), RULES, trailing=6)
    assert len({a["window"] for a in fixed.alerts}) > 10  # the slow climb leaves the first weeks far behind
    assert {a["window"] for a in trailing.alerts} == {25 * WEEK}
    assert trailing.reference == [] and trailing.thresholds.iloc[:6].isna().all().all()


def test_a_candidate_model_is_checked_against_every_window_of_the_baseline():
    rng = np.random.default_rng(1)
    served = _windows(list(0.3 + 0.01 * rng.standard_normal(12)), [[0.5, 0.5]] * 12)
    same = detect(served, RULES, baseline=served)
    assert same.alerts == [] and same.reference == []
    shifted = _windows([0.3] * 6 + [0.5] * 6, [[0.5, 0.5]] * 12)
    drift = detect(shifted, RULES, baseline=served)
    assert {a["window"] for a in drift.alerts} == {i * WEEK for i in range(6, 12)}
