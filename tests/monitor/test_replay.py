import numpy as np
import pandas as pd
import pytest
import torch

from seqlens.data.log import ITEM, USER
from seqlens.errors import DataError
from seqlens.monitor import answer, requests_from_log, window_starts
from seqlens.monitor.replay import ORDER, reversed_items


def test_every_event_after_a_users_first_is_a_request_holding_the_history_before_it(fitted, synth_log):
    requests = requests_from_log(fitted, synth_log, "3d", per_window=None, per_user=None)
    firsts = synth_log.df[USER].nunique()
    assert len(requests) == len(synth_log) - firsts  # every item is known to the model here
    df = synth_log.df
    row = 37
    user_rows = df.index[df[USER] == requests.users[row]]
    before = df.loc[user_rows][df.loc[user_rows, "timestamp"] < requests.times[row]]
    assert (
        list(fitted.decode_items(requests.histories[row]))[: len(before)]
        == list(before[ITEM])[: len(requests.histories[row])]
    )


def test_at_most_per_window_requests_are_drawn_per_window_reproducibly(fitted, synth_log):
    a = requests_from_log(fitted, synth_log, "3d", per_window=10, seed=1)
    b = requests_from_log(fitted, synth_log, "3d", per_window=10, seed=1)
    _, counts = np.unique(window_starts(a.times, "3d"), return_counts=True)
    assert counts.max() == 10
    assert np.array_equal(a.times, b.times) and a.users.tolist() == b.users.tolist()


def test_one_user_holds_at_most_per_user_requests_of_a_window(fitted, synth_log):
    requests = requests_from_log(fitted, synth_log, "30d", per_window=None, per_user=2)
    frame = pd.DataFrame({"window": window_starts(requests.times, "30d"), "user": requests.users})
    assert frame.groupby(["window", "user"]).size().max() == 2


def test_a_window_that_is_not_a_duration_is_refused():
    with pytest.raises(DataError, match="window='weekly' is not a duration"):
        window_starts(np.array([1, 2]), "weekly")
    assert window_starts(np.array([86400 * 7 + 5]), "7d").tolist() == [86400 * 7]
    assert window_starts(np.array([7200 + 5]), "2h").tolist() == [7200]


def test_answers_exclude_the_history_and_attention_sums_to_one_per_request(fitted, synth_log):
    requests = requests_from_log(fitted, synth_log, "3d", per_window=5)
    answers = answer(fitted, requests, k=5)
    assert len(answers.records) == len(requests) and answers.recommended.shape == (len(requests), 5)
    for row in range(len(requests)):
        assert not set(answers.recommended[row]) & set(requests.histories[row])
    mass = np.bincount(answers.attended_row, answers.attended_mass, minlength=len(requests))
    assert np.allclose(mass, 1.0, atol=1e-5)
    assert ((answers.records.filter(like="age@") >= 0) & (answers.records.filter(like="age@") <= 1 + 1e-6)).all().all()
    assert np.array_equal(answers.latest, [h[-1] for h in requests.histories])


def test_a_model_without_attention_is_refused(synth_split, synth_log):
    import seqlens

    popular = seqlens.Popular().fit(synth_split.train)
    with pytest.raises(DataError, match="no attention to monitor"):
        answer(popular, requests_from_log(popular, synth_log, "3d", per_window=5))


def test_cohorts_by_history_length_and_by_a_user_attribute(fitted, synth_log):
    import pandas as pd

    from seqlens.data import read_users
    from seqlens.monitor.windows import cohort_labels

    answers = answer(fitted, requests_from_log(fitted, synth_log, "3d", per_window=20))
    by_length = cohort_labels(answers, "length")
    assert len(set(by_length)) == 3
    lengths = answers.records["length"].to_numpy()
    short = np.char.startswith(by_length.astype(str), "short")
    assert lengths[short].max() < lengths[~short].min()
    users = read_users(pd.DataFrame({"user_id": ["u0", "u1"], "plan": ["paid", "free"]}), categorical=["plan"])
    by_plan = cohort_labels(answers, "plan", users)
    assert set(by_plan) <= {"paid", "free", "unknown"} and (by_plan[answers.records["user_id"] == "u0"] == "paid").all()
    with pytest.raises(DataError, match="give the user table"):
        cohort_labels(answers, "plan")


def test_reversed_items_reverses_the_real_items_and_keeps_them_right_aligned():
    seq = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
    assert reversed_items(seq).tolist() == [[0, 0, 5, 4, 3], [5, 4, 3, 2, 1], [0, 0, 0, 0, 7]]


def test_order_sensitivity_is_the_share_of_the_list_that_reading_the_history_backwards_changes(fitted, synth_log):
    requests = requests_from_log(fitted, synth_log, "3d", per_window=5)
    records = answer(fitted, requests, k=5).records
    short = [r for r in range(len(requests)) if 1 <= len(requests.histories[r]) <= fitted.max_len][:12]
    for row in short:
        history = list(fitted.decode_items(requests.histories[row]))
        lists = [set(fitted.recommend(histories={"u": items}, k=5)[ITEM]) for items in (history, history[::-1])]
        assert records.loc[row, ORDER] == pytest.approx(1 - len(lists[0] & lists[1]) / 5)
    one = [r for r in range(len(requests)) if len(requests.histories[r]) == 1]
    assert one and (records.loc[one, ORDER] == 0).all()  # one item read backwards is the same history
    assert records.loc[short, ORDER].max() > 0
