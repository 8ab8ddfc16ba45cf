"""The synthetic generator: reproducible, well-formed, with its planted structure visible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqlens import synthetic_log, trigger_families
from seqlens.data.synthetic import FAMILIES, LONG_RANGE, SECOND_ORDER, planted_log


def test_same_seed_same_log_other_seed_other_log(synth_log):
    again = synthetic_log(n_users=200, n_items=50, mean_length=12, seed=0)
    pd.testing.assert_frame_equal(synth_log.df, again.df)
    assert synth_log.fingerprint() == again.fingerprint()
    other = synthetic_log(n_users=200, n_items=50, mean_length=12, seed=1)
    assert other.fingerprint() != synth_log.fingerprint()


def test_shape(synth_log):
    assert synth_log.n_users == 200
    assert synth_log.n_items <= 50
    lengths = synth_log.df.groupby("user_id").size()
    assert lengths.min() >= 5
    assert 9 < lengths.mean() < 15
    assert synth_log.has_time
    # strictly increasing times within each user
    assert (synth_log.df.groupby("user_id")["timestamp"].diff().dropna() > 0).all()
    titles = synth_log.titles()
    assert len(titles) == 50 and titles["i7"].startswith("Item 7 (genre ")


def test_first_order_transitions_are_planted(synth_log):
    """Each item has three typical successors: the top three successors carry far more than 3/50 of the mass."""
    seqs = synth_log.sequences().values()
    pairs = pd.Series([(a, b) for s in seqs for a, b in zip(s, s[1:])])
    counts = pairs.value_counts()
    by_item = {}
    for (a, _), n in counts.items():
        by_item.setdefault(a, []).append(n)
    shares = [sum(sorted(v, reverse=True)[:3]) / sum(v) for v in by_item.values() if sum(v) >= 20]
    assert np.mean(shares) > 0.4


def test_the_demo_data_did_not_change_when_the_test_bed_was_added():
    """`synthetic_log` draws the same random numbers as before `planted_log` existed (the demo's numbers hold)."""
    assert synthetic_log().fingerprint() == "58ae1cf1bd37c19d"


@pytest.fixture(scope="module")
def planted():
    return planted_log(n_users=400, seed=0)


def test_planted_log_is_reproducible(planted):
    again = planted_log(n_users=400, seed=0)
    assert again.log.fingerprint() == planted.log.fingerprint()
    pd.testing.assert_frame_equal(again.truth, planted.truth)
    assert planted_log(n_users=400, seed=1).log.fingerprint() != planted.log.fingerprint()


def test_planted_truth_points_at_real_triggers(planted):
    seqs = planted.log.sequences()
    truth = planted.truth
    assert set(truth["rule"]) == {LONG_RANGE, SECOND_ORDER}
    followers, gaps = {}, {}  # a long-range trigger item always announces the same item, after the same gap
    for r in truth.itertuples():
        seq = seqs[r.user_id]
        assert seq[r.position] == r.item_id
        assert r.is_last == (r.position == len(seq) - 1)
        if r.rule == LONG_RANGE:
            (a,) = r.triggers
            assert 10 <= r.position - a <= 40
            assert followers.setdefault(seq[a], r.item_id) == r.item_id
            assert gaps.setdefault(seq[a], r.position - a) == r.position - a
        else:
            a, b = r.triggers
            assert a < b == r.position - 1


def test_second_order_target_needs_the_earlier_item(planted):
    """B is followed by C when A came before it, and not when it did not: B alone does not decide."""
    seqs = planted.log.sequences()
    rules = planted.truth[planted.truth["rule"] == SECOND_ORDER]
    pairs = {(seqs[r.user_id][r.triggers[0]], seqs[r.user_id][r.triggers[1]]): r.item_id for r in rules.itertuples()}
    after_b = {True: [], False: []}
    for seq in seqs.values():
        for (a, b), c in pairs.items():
            for pos, item in enumerate(seq[:-1]):
                if item == b:
                    after_b[a in seq[:pos]].append(seq[pos + 1] == c)
    assert np.mean(after_b[True]) > 0.85  # not always: another rule's item may be due at that step
    assert np.mean(after_b[False]) < 0.1


def test_many_users_end_on_a_rule_governed_item(planted):
    last = planted.truth[planted.truth["is_last"]]
    assert last["user_id"].is_unique
    assert len(last) > 0.3 * planted.log.n_users
    assert (last["rule"] == SECOND_ORDER).sum() >= 20


@pytest.fixture(scope="module")
def families():
    return trigger_families(n_users=600, seed=3)


def test_trigger_families_are_reproducible_and_hold_every_family(families):
    again = trigger_families(n_users=600, seed=3)
    assert again.log.fingerprint() == families.log.fingerprint()
    last = families.truth[families.truth["is_last"]]
    assert set(last["family"]) == set(FAMILIES)


def test_trigger_families_truth_points_at_real_triggers_before_the_target(families):
    sequences = families.log.sequences()
    for row in families.truth.itertuples():
        seq = sequences[row.user_id]
        assert seq[row.position] == row.item_id
        assert all(t < row.position for t in row.triggers)
        distance = row.position - max(row.triggers)
        if row.family == "recent":
            assert distance < 8
        elif row.family == "early":
            assert row.position - min(row.triggers) >= 20
        if row.family == "two_triggers":
            assert len({seq[t] for t in row.triggers}) == 2  # both triggers of the and-rule occurred
        if row.family == "distractors":
            assert row.decoys and set(row.decoys) <= {row.position - 2, row.position - 1}
            assert min(row.decoys) > max(row.triggers)  # recent: placed after the trigger
            assert not {seq[d] for d in row.decoys} & {seq[t] for t in row.triggers}
