"""The synthetic generator: reproducible, well-formed, with its planted structure visible."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqlens import synthetic_log


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
