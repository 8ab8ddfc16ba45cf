"""SASRec as an estimator: recommend() for known users and ad-hoc histories, errors, reproducibility, accuracy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import seqlens
from seqlens import SASRec, evaluate, synthetic_log
from seqlens.errors import DataError
from seqlens.explain import explain, explain_features
from seqlens.recommenders import NotFittedError
from tests.recommenders.conftest import FAST, check_recommendations

USERS = ["u0", "u17", "u199"]


def test_recommend_known_users(sasrec):
    recs = sasrec.recommend(users=USERS, k=5)
    check_recommendations(recs, USERS, 5, sasrec)


def test_recommend_excludes_each_users_history(sasrec, synth_split):
    recs = sasrec.recommend(users=USERS, k=10)
    history = synth_split.test_history.sequences()  # fit(train, valid) remembers train + valid
    for user in USERS:
        assert sasrec.history_of(user) == history[user]
        assert not set(recs[recs["user_id"] == user]["item_id"]) & set(history[user])


def test_recommend_without_exclusion_ranks_the_whole_catalogue(sasrec):
    n = sasrec.n_items_
    recs = sasrec.recommend(users=["u0"], k=n, exclude_seen=False)
    check_recommendations(recs, ["u0"], n, sasrec)
    assert set(recs["item_id"]) == set(sasrec.item_ids_)
    # excluding seen items removes exactly those items from the same ranking
    seen = set(sasrec.history_of("u0"))
    excluded = sasrec.recommend(users=["u0"], k=n - len(seen))
    assert excluded["item_id"].tolist() == [i for i in recs["item_id"] if i not in seen]


def test_k_larger_than_the_catalogue_is_capped(sasrec):
    recs = sasrec.recommend(users=["u0"], k=1000, exclude_seen=False)
    assert len(recs) == sasrec.n_items_


def test_recommend_for_adhoc_history(sasrec, synth_history):
    recs = sasrec.recommend(histories={"x": synth_history}, k=5)
    check_recommendations(recs, ["x"], 5, sasrec)
    assert not set(recs["item_id"]) & set(synth_history)
    everything = sasrec.recommend(histories={"x": synth_history}, k=sasrec.n_items_, exclude_seen=False)
    assert set(synth_history) <= set(everything["item_id"])
    rest = sasrec.recommend(histories={"x": synth_history}, k=sasrec.n_items_)
    assert rest["item_id"].tolist() == [i for i in everything["item_id"] if i not in set(synth_history)]


def test_adhoc_history_of_a_known_user_matches_users_path(sasrec):
    by_user = sasrec.recommend(users=["u5"], k=7)
    by_history = sasrec.recommend(histories={"u5": sasrec.history_of("u5")}, k=7)
    pd.testing.assert_frame_equal(by_user, by_history)


def test_an_unknown_latest_item_does_not_hide_the_history(synth_split):
    """A validation item never seen in training is left out of the remembered history (as evaluation does);
    kept as padding in the last position, it made every score 0 and the list arbitrary."""
    valid = synth_split.valid.df.copy()
    valid.loc[valid["user_id"] == "u5", "item_id"] = "never-seen"
    model = SASRec(**FAST, epochs=1, layers=1).fit(synth_split.train, valid=seqlens.InteractionLog.from_frame(valid))
    known = synth_split.train.sequences()["u5"]
    assert model.history_of("u5") == known
    by_user = model.recommend(users=["u5"], k=7)
    pd.testing.assert_frame_equal(by_user, model.recommend(histories={"u5": known}, k=7))
    assert by_user["score"].nunique() > 1


def test_adhoc_labels_and_ints_become_strings(sasrec, synth_history):
    recs = sasrec.recommend(histories={42: synth_history[:3], "y": synth_history[3:]}, k=2)
    assert recs["user_id"].tolist() == ["42", "42", "y", "y"]


def test_only_the_last_max_len_items_matter(sasrec, synth_split):
    long = [i for seq in list(synth_split.train.sequences().values())[:5] for i in seq]
    assert len(long) > sasrec.max_len
    a = sasrec.recommend(histories={"x": long}, k=10, exclude_seen=False)
    b = sasrec.recommend(histories={"x": long[-sasrec.max_len :]}, k=10, exclude_seen=False)
    pd.testing.assert_frame_equal(a, b)


def test_unknown_items_warn_and_are_ignored(sasrec, synth_history):
    with pytest.warns(UserWarning, match=r"ignored 2 unknown item ids \['nope', 'gone'\]"):
        recs = sasrec.recommend(histories={"x": ["nope"] + synth_history + ["gone"]}, k=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = sasrec.recommend(histories={"x": synth_history}, k=5)
    pd.testing.assert_frame_equal(recs, clean)


def test_all_unknown_history_raises(sasrec):
    with pytest.raises(DataError, match="none of its items is known"):
        sasrec.recommend(histories={"x": ["nope", "gone"]})


@pytest.mark.parametrize("k", [0, -3, 2.5, True, "5"])
def test_bad_k_raises(sasrec, k):
    with pytest.raises(DataError, match="k must be a positive integer"):
        sasrec.recommend(users=["u0"], k=k)


def test_bad_recommend_arguments(sasrec):
    with pytest.raises(DataError, match="exactly one"):
        sasrec.recommend()
    with pytest.raises(DataError, match="exactly one"):
        sasrec.recommend(users=["u0"], histories={"x": ["i1"]})
    with pytest.raises(DataError, match="'nobody' was not seen in fit"):
        sasrec.recommend(users=["u0", "nobody"])
    with pytest.raises(DataError, match="non-empty mapping"):
        sasrec.recommend(histories={})
    with pytest.raises(DataError, match="is empty"):
        sasrec.recommend(histories={"x": []})
    with pytest.raises(DataError, match="must be a list"):
        sasrec.recommend(histories={"x": "i1"})


def test_not_fitted():
    with pytest.raises(NotFittedError):
        SASRec(**FAST).recommend(users=["u0"])


@pytest.mark.parametrize(
    "params",
    [dict(loss="hinge"), dict(score="cosine"), dict(dim=0), dict(dim=10, heads=3), dict(dropout=1.0), dict(epochs=True),
     dict(refinement="deep"), dict(rank=0), dict(layers=2, refine_layers=[2]), dict(lr_patience=-1), dict(positions="middle"),
     dict(rotary=True, score="additive"), dict(rotary=True, dim=12, heads=4), dict(rotary="yes"),
     dict(lr_patience=1.5)],
)  # fmt: skip
def test_bad_parameters_are_stored_then_refused_by_fit_naming_the_parameter(params):
    model = SASRec(**params)  # scikit-learn style: the constructor only stores
    name = "rotary" if "rotary" in params else next(iter(params))
    with pytest.raises(DataError, match=name):
        model.fit(synthetic_log(n_users=20, seed=0))


def test_get_params_round_trip():
    model = SASRec(epochs=2, dim=8, loss="bce")
    params = model.get_params()
    assert params["epochs"] == 2 and params["dim"] == 8 and params["loss"] == "bce"
    assert SASRec(**params).get_params() == params


def test_training_loop_is_deterministic_given_the_global_seed(synth_split):
    """With the global torch RNG in the same state, two fits agree exactly (the loop itself is seeded)."""
    out = []
    for _ in range(2):
        torch.manual_seed(123)
        model = SASRec(epochs=1, seed=5, **FAST).fit(synth_split.train)
        out.append(model.recommend(users=USERS, k=5))
    pd.testing.assert_frame_equal(out[0], out[1], check_exact=True)


def test_same_seed_gives_identical_recommendations(synth_split):
    torch.manual_seed(1)
    a = SASRec(epochs=1, seed=5, **FAST).fit(synth_split.train).recommend(users=USERS, k=5)
    torch.manual_seed(2)  # any other code that used torch's global RNG in between
    b = SASRec(epochs=1, seed=5, **FAST).fit(synth_split.train).recommend(users=USERS, k=5)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("loss", ["sampled", "bce", "gbce"])
def test_other_losses_fit(synth_split, loss):
    model = SASRec(epochs=1, loss=loss, n_negatives=8, **FAST).fit(synth_split.train)
    assert len(model.history_) == 1 and np.isfinite(model.history_[0]["loss"])
    check_recommendations(model.recommend(users=["u0"], k=3), ["u0"], 3, model)


def test_fit_history_records_validation(sasrec):
    assert [r["epoch"] for r in sasrec.history_] == [1, 2, 3]
    assert all("ndcg@10" in r and np.isfinite(r["loss"]) for r in sasrec.history_)
    assert sum(r["best"] for r in sasrec.history_) >= 1


def test_single_interaction_users_only(make_log):
    with pytest.raises(DataError, match="single interaction"):
        SASRec(**FAST).fit(make_log([("u", "a", 1), ("v", "b", 2)]))


def test_sasrec_beats_popular(synth_split, popular):
    model = SASRec(epochs=8, batch_size=32, lr=5e-3, dropout=0.2, **FAST).fit(synth_split.train, synth_split.valid)
    test, history = synth_split.test, synth_split.test_history
    pop = evaluate(popular, test, history).summary["ndcg@10"]
    seq = evaluate(model, test, history).summary["ndcg@10"]
    assert seq > pop + 0.02, (seq, pop)


def test_micro_batches_give_the_same_loss_as_one_batch(synth_split, monkeypatch):
    """Splitting a batch by length into micro-batches changes the padding, not the loss."""
    import seqlens.recommenders.neural as module

    losses = []
    original = module.next_item_loss
    for parts in (1, 4):
        monkeypatch.setattr(module, "MICRO_BATCHES", parts)
        model = SASRec(epochs=1, batch_size=10_000, dropout=0.0, **FAST)
        captured = {}

        def spy(hidden, targets, *args, captured=captured, **kwargs):
            loss = original(hidden, targets, *args, **kwargs)
            captured["loss"] = float(loss.detach())
            return loss

        monkeypatch.setattr(module, "next_item_loss", spy)
        model.fit(synth_split.train)
        losses.append(captured["loss"])
    assert abs(losses[0] - losses[1]) < 1e-5 * abs(losses[0])


@pytest.mark.parametrize("refinement", ["simple", "value", "additive"])
def test_awrsr_variants_fit_and_round_trip(synth_split, tmp_path, refinement):
    model = SASRec(epochs=1, refinement=refinement, rank=8, refine_layers=[-1], **FAST)
    model.fit(synth_split.train, synth_split.valid)
    model.save(tmp_path / "m")
    loaded = seqlens.load(tmp_path / "m")
    assert loaded.get_params() == model.get_params()
    assert loaded.net_.blocks[-1].attn.refinement == refinement and loaded.net_.blocks[0].attn.refinement == "none"
    users = list(model.user_ids_[:5])
    pd.testing.assert_frame_equal(loaded.recommend(users=users), model.recommend(users=users))


def test_get_and_set_params_round_trip_like_scikit_learn():
    model = SASRec(dim=32, dropout=0.2, progress=False)
    clone = type(model)(**model.get_params())
    assert clone.get_params() == model.get_params()
    assert model.set_params(dim=16, lr=1e-3) is model and model.dim == 16 and model.lr == 1e-3
    with pytest.raises(DataError, match="no parameter"):
        model.set_params(colour="red")
    model.set_params(heads=3)  # stored as given (16 is not divisible by 3) ...
    with pytest.raises(DataError, match="heads"):
        model.fit(synthetic_log(n_users=20, seed=0))  # ... and refused by fit, before any work


def test_bf16_training_learns_and_keeps_float32_weights(synth_split):
    """precision='bf16' (autocast; runs on the CPU too): the loss falls as in float32, the weights stay float32,
    and the model ranks about as well."""
    runs = {}
    for precision in ("fp32", "bf16"):
        model = SASRec(epochs=4, precision=precision, seed=1, **FAST).fit(synth_split.train, synth_split.valid)
        losses = [r["loss"] for r in model.history_]
        assert losses[-1] < losses[0]
        assert all(p.dtype == torch.float32 for p in model.net_.parameters())
        runs[precision] = evaluate(model, synth_split.test, synth_split.test_history).summary["ndcg@10"]
    assert runs["bf16"] == pytest.approx(runs["fp32"], abs=0.03)


def test_the_fitted_model_is_on_the_cpu_and_its_device_is_not_part_of_its_version(synth_split, tmp_path):
    from seqlens.recommenders.artifacts import config_hash

    model = SASRec(epochs=1, device="cpu", **FAST).fit(synth_split.train)
    assert model.net_.item_emb.weight.device.type == "cpu"
    assert config_hash(model) == config_hash(model.set_params(device="auto"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_a_gpu_gives_the_cpu_model_within_float_tolerance(synth_split):
    scores = {}
    for device in ("cpu", "cuda"):
        model = SASRec(epochs=2, dropout=0.0, device=device, seed=3, **FAST).fit(synth_split.train)
        assert model.net_.item_emb.weight.device.type == "cpu"
        scores[device] = evaluate(model, synth_split.test, synth_split.test_history).summary["ndcg@10"]
    assert scores["cuda"] == pytest.approx(scores["cpu"], abs=0.01)


def test_the_entropy_penalty_sharpens_or_spreads_attention():
    """Trained with a positive weight, attention rows end with less entropy than with a negative one."""
    log = synthetic_log(n_users=120, n_items=80, seed=0)

    def entropy(weight: float) -> float:
        model = SASRec(max_len=12, dim=16, epochs=6, lr=0.01, progress=False, seed=0, attention_entropy=weight).fit(log)
        seq = torch.from_numpy(model.histories_.padded(np.arange(50), model.max_len))
        with torch.inference_mode():
            _, weights = model.net_(seq, return_attention=True)
        a = torch.stack([w.applied for w in weights])  # [L, B, H, T, T]
        return float((-(a * a.clamp(min=1e-12).log()).sum(-1)).sum() / ((seq != 0).sum() * len(weights)))

    plain = entropy(0.0)
    assert entropy(5.0) < plain - 0.1 and entropy(-5.0) > plain + 0.02, plain


def gap_rule_log() -> seqlens.InteractionLog:
    """The item type after a history is set by the time between its last two items (short: s items, long: l items),
    which an order-only model cannot see."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(300):
        gaps = rng.choice([10, 100_000], 10)
        times = np.concatenate([[0], np.cumsum(gaps)])
        for k in range(10):
            kind = "s" if k < 2 or gaps[k - 2] == 10 else "l"
            rows.append((f"u{u}", f"{kind}{rng.integers(5)}", int(times[k])))
    return seqlens.read_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))


def test_time_intervals_let_the_model_read_what_the_order_cannot(tmp_path):
    split = seqlens.leave_one_out(gap_rule_log())
    recall = {}
    for time in ("none", "interval"):
        model = seqlens.SASRec(time=time, dim=16, max_len=10, epochs=15, progress=False, seed=0)
        model.fit(split.train, valid=split.valid)
        recall[time] = seqlens.evaluate(model, split.test, split.test_history, exclude_seen=False).summary["recall@5"]
    assert recall["interval"] > recall["none"] + 0.2, recall
    model.save(tmp_path / "m")  # the stored histories keep their timestamps
    loaded = seqlens.load(tmp_path / "m")
    assert loaded.recommend(users=["u3", "u7"], k=5).equals(model.recommend(users=["u3", "u7"], k=5))
    np.testing.assert_array_equal(loaded.histories_.times, model.histories_.times)
    why = explain(loaded, "u3")
    assert why.recommended == loaded.recommend(users=["u3"], k=1)["item_id"].iloc[0]
    by_feature = explain_features(loaded, user="u3")  # the intervals are a feature group of their own
    assert by_feature.groups == ["item", "time"] and by_feature.recommended == why.recommended
    adhoc = loaded.recommend(histories={"x": ["s1", "l2"]}, k=3)  # no timestamps given: intervals unknown
    assert len(adhoc) == 3


def test_time_intervals_need_timestamps():
    log = seqlens.read_interactions(pd.DataFrame({"user_id": ["a"] * 3, "item_id": ["1", "2", "3"]}), time=None)
    with pytest.raises(DataError, match="time='interval' reads the timestamps"):
        seqlens.SASRec(time="interval", epochs=1, progress=False).fit(log)


def test_ad_hoc_timestamps_are_checked_and_dropped_with_unknown_items():
    log = gap_rule_log()
    model = seqlens.SASRec(time="interval", dim=8, max_len=10, epochs=1, progress=False, seed=0).fit(log)
    with pytest.raises(DataError, match="timestamps of 'x': 1 given for a history of 2 items"):
        model.recommend(histories={"x": ["s1", "l2"]}, timestamps={"x": [5]})
    with pytest.raises(DataError, match="known users' are stored with the model"):
        model.recommend(users=["u1"], timestamps={"u1": [5]})
    with pytest.raises(DataError, match="must be integer seconds"):
        model.recommend(histories={"x": ["s1"]}, timestamps={"x": ["noon"]})
    with pytest.raises(DataError, match="which histories does not hold"):
        model.recommend(histories={"x": ["s1"]}, timestamps={"y": [5]})
    with pytest.warns(UserWarning, match="ignored 1 unknown"):
        labels, seqs = model.encoded_histories(histories={"x": ["s1", "nope", "l2"]}, timestamps={"x": [1, 2, 30]})
    assert seqs.times.tolist() == [1, 30]


def test_a_replayed_log_reaches_a_time_model_with_its_times():
    from seqlens.monitor import answer, requests_from_log

    log = gap_rule_log()
    model = seqlens.SASRec(time="interval", dim=8, max_len=10, epochs=2, progress=False, seed=0).fit(log)
    requests = requests_from_log(model, log, window="1d", per_window=None).where(np.arange(5))
    answers = answer(model, requests, k=3)
    for i in range(5):
        history = list(model.decode_items(requests.histories[i]))
        expected = model.recommend(histories={"x": history}, k=3, timestamps={"x": requests.history_times[i]})
        assert list(model.decode_items(answers.recommended[i])) == expected["item_id"].tolist()


def test_explanations_of_histories_with_and_without_times_in_one_batch_show_no_made_up_ages():
    from seqlens.explain import explain_batch

    model = seqlens.SASRec(time="interval", dim=8, max_len=10, epochs=1, progress=False, seed=0).fit(gap_rule_log())
    found = explain_batch(model, histories={"a": ["s1", "l2"], "b": ["s3", "s4"]}, timestamps={"a": [100, 200]})
    assert found[0].timestamps == [100, 200] and found[1].timestamps is None
