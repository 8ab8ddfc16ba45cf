"""Explanation objects: narrative format, privacy deny-list, timestamps, batching, and clear errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

import seqlens
from seqlens.errors import DataError
from seqlens.explain import OTHER, DenyList, explain, explain_batch, narrative
from seqlens.explain.explanation import timestamps_from_log
from seqlens.explain.narrative import Citation, time_ago

DAY = 86400


def test_narrative_format():
    text = narrative("Heat", [Citation("Ronin", 0.41, 3 * DAY), Citation("Fargo", 0.22)], verb="watched")
    assert text == "Recommended Heat because you recently watched Ronin (41%, 3 days ago) and Fargo (22%)"
    three = narrative("Heat", [Citation("A", 0.5), Citation("B", 0.3), Citation("C", 0.1)], other_share=0.1)
    assert (
        three == "Recommended Heat because you recently interacted with A (50%), B (30%), C (10%) and other items (10%)"
    )
    assert (
        narrative("Heat", [], other_share=1.0) == "Recommended Heat because of other items (100%) you interacted with"
    )
    assert narrative("Heat", []) == "Recommended Heat; no item in your history raised its score"


@pytest.mark.parametrize(
    "seconds, text",
    [(5, "moments ago"), (60, "1 minute ago"), (7200, "2 hours ago"), (DAY, "1 day ago"), (13 * DAY, "13 days ago"),
     (14 * DAY, "2 weeks ago"), (90 * DAY, "3 months ago"), (800 * DAY, "2 years ago"), (-5, "later")],
)  # fmt: skip
def test_time_ago(seconds, text):
    assert time_ago(seconds) == text


def test_explanation_narrative_cites_top_items_with_shares_and_ages(model, history):
    times = [1_000_000 + DAY * i for i in range(len(history))]
    e = explain(model, history=history, method="occlusion", k=3, timestamps=times, verb="bought")
    pattern = (
        r"^Recommended (.+) because you recently bought (.+ \(\d+%, (\d+ \w+|moments) ago\))( and .+)?(, despite .+)?$"
    )
    assert re.match(pattern, e.narrative), e.narrative
    assert e.narrative.startswith(f"Recommended {model.item_titles_[e.recommended]} because")
    top_title = model.item_titles_[e.top(1)[0][0]]
    assert top_title in e.narrative
    assert len(re.findall(r"\(\d+%", e.narrative)) <= 3
    assert e.timestamps == times[-model.max_len :]
    assert e.shares.sum() == pytest.approx(1.0)
    frame = e.to_frame()
    assert list(frame.columns) == ["position", "item_id", "title", "timestamp", "score", "share"]
    assert frame["item_id"].tolist() == history and frame["timestamp"].tolist() == times


def test_repeated_items_are_cited_once_with_summed_share(model):
    a, b = model.item_ids_[0], model.item_ids_[1]
    e = explain(model, history=[a, b, a, b, a], method="attention")
    title = model.item_titles_[a]
    assert e.narrative.count(title) == 1
    share = e.shares[[0, 2, 4]].sum()
    assert f"{title} ({share:.0%}" in e.narrative


def test_deny_listed_items_are_never_named(model, history):
    denied = {history[-1], history[len(history) // 2]}
    titles = {model.item_titles_[i] for i in denied}
    for method in seqlens.explain.METHODS:
        times = list(range(len(history)))
        e = explain(model, history=history, method=method, deny=denied, timestamps=times, k=len(history))
        text = json.dumps(e.to_dict(), default=str) + e.narrative + e.to_frame().to_string()
        assert not any(i in e.items or i in [t for t, _, _ in e.top(50)] for i in denied)
        assert not any(t in text for t in titles), method
        hidden = [j for j, i in enumerate(history) if i in denied]
        assert [e.items[j] for j in hidden] == [OTHER] * len(hidden)
        assert all(e.timestamps[j] is None for j in hidden)
        assert e.other_share == pytest.approx(e.shares[hidden].sum())
        if e.other_share >= 0.005:
            assert f"other items ({e.other_share:.0%})" in e.narrative
        # hiding changes what is named, not what the model computed
        plain = explain(model, history=history, method=method, timestamps=times)
        np.testing.assert_allclose(e.scores, plain.scores, atol=1e-6)


def test_deny_list_by_attribute(model, synth_log, history):
    genre = synth_log.items.set_index("item_id").loc[history[-1], "genre"]
    deny = DenyList.build(attributes={"genre": [genre]}, metadata=synth_log.items)
    expected = set(synth_log.items.loc[synth_log.items["genre"] == genre, "item_id"])
    assert set(deny.items) == expected
    e = explain(model, history=history, deny=deny)
    assert all((i == OTHER) == (h in expected) for i, h in zip(e.items, history))
    assert f"(genre {genre})" not in e.narrative
    multi = pd.DataFrame({"item_id": ["m1", "m2"], "genres": ["Action|Horror", "Comedy"]})
    assert DenyList.build(["x"], {"genres": "Horror"}, multi).items == {"x", "m1"}
    with pytest.raises(DataError, match="not a column"):
        DenyList.build(attributes={"colour": ["red"]}, metadata=multi)
    with pytest.raises(DataError, match="needs item metadata"):
        DenyList.build(attributes={"genre": ["A"]})
    with pytest.raises(DataError, match="list of item ids"):
        DenyList.build("i3")


def test_explain_a_known_user_three_ways(model):
    by_name = explain(model, "u3")
    assert by_name.user == "u3"
    assert by_name.items == model.history_of("u3")[-model.max_len :]
    np.testing.assert_allclose(explain(model, user="u3").scores, by_name.scores)
    np.testing.assert_allclose(explain(model, model.history_of("u3")).scores, by_name.scores)


def test_explain_batch_equals_one_by_one(model):
    users = ["u0", "u5", "u9"]
    items = [None, model.item_ids_[4], None]
    for method in ("attention", "occlusion"):
        batch = explain_batch(model, users=users, items=items, method=method)
        assert [e.user for e in batch] == users
        for e, user, item in zip(batch, users, items):
            one = explain(model, user=user, item=item, method=method)
            assert e.recommended == one.recommended and e.narrative == one.narrative
            np.testing.assert_allclose(e.scores, one.scores, atol=1e-5)
        assert batch[1].recommended == items[1]


def test_timestamps_from_the_log(model, synth_split):
    log = synth_split.test_history.concat(synth_split.test)
    times = timestamps_from_log(model, log, ["u3", "u4"])
    full = log.df[log.df["user_id"] == "u3"]
    assert times["u3"] == full["timestamp"].iloc[:-1].tolist()
    e = explain(model, user="u3", timestamps=times["u3"])
    assert "ago" in e.narrative


def test_a_known_user_is_explained_with_the_timestamps_the_model_stored(model, synth_split):
    log = synth_split.test_history
    window = log.df[log.df["user_id"] == "u3"]["timestamp"].tolist()[-model.max_len :]
    assert explain(model, user="u3").timestamps == window
    assert explain(model, history=model.history_of("u3")).timestamps is None  # an ad-hoc history has none


def test_unknown_history_items_are_dropped_with_their_times(model, history):
    with pytest.warns(UserWarning, match="ignored 1 unknown"):
        e = explain(model, history=["nope", *history], timestamps=[0, *range(1, len(history) + 1)])
    assert e.items == history and e.timestamps == list(range(1, len(history) + 1))


def test_bad_input_names_the_problem(model, history, synth_split):
    cases = [
        (dict(user="nobody"), "user 'nobody' was not seen in fit"),
        (dict(history=history, item="nope"), "item 'nope' to explain is not known"),
        (dict(history=history, method="lime"), "method='lime' is unknown"),
        (dict(history=[]), "is empty"),
        (dict(history=["nope"]), "none of its items is known"),
        (dict(), "exactly one of user"),
        (dict(user="u3", history=history), "exactly one of user"),
        (dict(history=history, k=0), "k must be a positive integer"),
        (dict(history=history, timestamps=[1, 2]), "2 given for a history of"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DataError, match=re.escape(message)):
            explain(model, **kwargs)
    with pytest.raises(DataError, match="not both"):
        explain(model, "u3", user="u3")
    with pytest.raises(DataError, match="one item id \\(or None\\) per user"):
        explain_batch(model, users=["u1", "u2"], items=["i1"])
    popular = seqlens.Popular().fit(synth_split.train)
    with pytest.raises(DataError, match="Popular has no network to explain"):
        explain(popular, history=history)
    with pytest.raises(DataError, match="not fitted"):
        explain(seqlens.SASRec(), history=history)
    gru = seqlens.GRU4Rec(dim=8, epochs=1, progress=False).fit(synth_split.train)
    with pytest.raises(DataError, match="needs attention layers"):
        explain(gru, history=history, method="attention")
    assert len(explain(gru, history=history, method="occlusion").scores) == len(history)


def test_ages_are_measured_from_now(model, history):
    times = [1_000_000 + DAY * i for i in range(len(history))]
    now = times[-1] + 30 * DAY
    e = explain(model, history=history, timestamps=times, now=now, k=1)
    item = e.top(1)[0][0]
    latest = max(j for j, i in enumerate(history) if i == item)
    assert f", {time_ago(now - times[latest])})" in e.narrative
    assert "weeks ago" in e.narrative or "month" in e.narrative


def test_the_top_item_read_from_a_given_state_is_the_one_recommend_ranks_first(model):
    """A state the caller computed (masking's pass) names the same item; a near tie is ranked again."""
    import torch

    from seqlens.explain.attributions import masked_states
    from seqlens.explain.explanation import recommended_items

    users = list(model.user_ids_)
    _, seqs = model.encoded_histories(users, None)
    seq = torch.from_numpy(seqs.padded(np.arange(len(users)), model.max_len))
    states = masked_states(model.net_, seq).states[:, -1]
    expected = recommended_items(model, seqs)
    np.testing.assert_array_equal(recommended_items(model, seqs, states=states), expected)
    # a state that points nowhere (all scores equal): no clear leader, so each history is ranked as recommend does
    np.testing.assert_array_equal(recommended_items(model, seqs, states=torch.zeros_like(states)), expected)
