"""The attribution methods: shape and order, exact occlusion and masking, signs and sums on a hand-built model,
rollout by hand, value norms, gradients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from seqlens import SASRec
from seqlens.data.log import InteractionLog
from seqlens.errors import DataError
from seqlens.explain import METHODS, explain, explain_batch, rollout
from seqlens.explain.attributions import SIGNED, attribute


def _seq(model, history):
    return torch.from_numpy(model.encode_items(history)[-model.max_len :])[None]


def _score(model, history, item) -> float:
    """The item's score after `history`, through the public recommend path (whole catalogue ranked)."""
    recs = model.recommend(histories={"h": history}, k=model.n_items_, exclude_seen=False)
    return float(recs.loc[recs["item_id"] == item, "score"].iloc[0])


@pytest.mark.parametrize("method", METHODS)
def test_one_score_per_position_in_history_order(model, history, method):
    e = explain(model, history=history, method=method)
    assert e.items == history[-model.max_len :]
    assert len(e.scores) == len(e.items) == len(e.titles)
    assert np.isfinite(e.scores).all()
    # left padding must not shift positions: the same history inside a batch with a longer one agrees
    longer = model.history_of("u0") + model.history_of("u1")
    batch = explain_batch(model, histories={"long": longer, "h": history}, method=method)
    assert batch[1].items == e.items
    np.testing.assert_allclose(batch[1].scores, e.scores, atol=1e-5)
    assert batch[1].recommended == e.recommended


def test_recommended_is_the_top_recommendation(model, history):
    top = model.recommend(histories={"h": history}, k=1)
    e = explain(model, history=history)
    assert e.recommended == top["item_id"].iloc[0]
    assert e.score == pytest.approx(top["score"].iloc[0], abs=1e-5)


def test_occlusion_is_the_exact_score_drop(model, history):
    item = model.item_ids_[7]
    e = explain(model, history=history, item=item, method="occlusion")
    full = _score(model, history, item)
    assert e.score == pytest.approx(full, abs=1e-5)
    by_hand = [full - _score(model, history[:j] + history[j + 1 :], item) for j in range(len(history))]
    np.testing.assert_allclose(e.scores, by_hand, atol=1e-5)


def test_attention_is_the_last_layers_last_row_averaged_over_heads(model, history):
    e = explain(model, history=history, method="attention")
    with torch.inference_mode():
        _, weights = model.net_(_seq(model, history), return_attention=True)
    last = weights[-1].applied[0, :, -1, :].numpy()
    np.testing.assert_allclose(e.per_head, last, atol=1e-6)
    np.testing.assert_allclose(e.scores, last.mean(0), atol=1e-6)
    assert e.scores.sum() == pytest.approx(1.0, abs=1e-5)


def test_attention_methods_use_the_refined_weights(refined, history):
    e = explain(refined, history=history, method="attention")
    with torch.inference_mode():
        _, weights = refined.net_(_seq(refined, history), return_attention=True)
    applied, raw = weights[-1].applied[0, :, -1].mean(0).numpy(), weights[-1].raw[0, :, -1].mean(0).numpy()
    assert not np.allclose(applied, raw, atol=1e-4)
    np.testing.assert_allclose(e.scores, applied, atol=1e-6)


def test_rollout_by_hand_on_two_layers():
    a1 = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]])
    a2 = torch.tensor([[[1.0, 0.0, 0.0], [0.4, 0.6, 0.0], [0.1, 0.1, 0.8]]])
    # 0.5 A + 0.5 I: layer 1 last row [0.1, 0.15, 0.75], layer 2 rows [1,0,0], [0.2,0.8,0], [0.05,0.05,0.9];
    # last row of (layer 2) @ (layer 1) = 0.05*[1,0,0] + 0.05*[0.25,0.75,0] + 0.9*[0.1,0.15,0.75]
    flow = rollout([a1, a2])
    np.testing.assert_allclose(flow[0, -1].numpy(), [0.1525, 0.1725, 0.675], atol=1e-6)
    np.testing.assert_allclose(flow[0, 1].numpy(), [0.2 * 1 + 0.8 * 0.25, 0.8 * 0.75, 0.0], atol=1e-6)
    np.testing.assert_allclose(flow.sum(-1).numpy(), 1.0, atol=1e-6)
    # a padding row (all zero weights) keeps its flow on itself instead of dividing by zero
    padded = rollout([torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)])
    np.testing.assert_allclose(padded[0].numpy(), np.eye(2))


def test_rollout_method_rolls_out_the_models_weights(model, history):
    e = explain(model, history=history, method="rollout")
    with torch.inference_mode():
        _, weights = model.net_(_seq(model, history), return_attention=True)
    expected = rollout([w.applied.mean(1) for w in weights])[0, -1].numpy()
    np.testing.assert_allclose(e.scores, expected, atol=1e-6)


def test_gradrollout_by_hand(model, history):
    """Chefer et al.: flow = I, then per layer (first first) flow += mean over heads of (dS/dA * A)^+ @ flow."""
    item = model.item_ids_[3]
    e = explain(model, history=history, item=item, method="gradrollout")
    target = model.encode_items([item])[0]
    with torch.enable_grad():
        hidden, weights = model.net_(_seq(model, history), return_attention=True)
        for w in weights:
            w.applied.retain_grad()
        model.net_.scores(hidden[:, -1])[0, target].backward()
    flow = torch.eye(len(history))
    for w in weights:
        a_bar = (w.applied.grad * w.applied).detach()[0].clamp(min=0).mean(0)  # [T, T]
        flow = flow + a_bar @ flow
    np.testing.assert_allclose(e.scores, flow[-1].numpy(), rtol=1e-5, atol=1e-6)
    assert e.scores[-1] >= 1.0  # the residual: the latest item keeps its own flow


def test_norm_is_weight_times_transformed_value_norm(model, history):
    e = explain(model, history=history, method="norm")
    attn = model.net_.blocks[-1].attn
    captured = []
    handle = attn.register_forward_hook(lambda m, args, out: captured.append(args[0]))
    with torch.inference_mode():
        _, weights = model.net_(_seq(model, history), return_attention=True)
    handle.remove()
    x = captured[0][0]  # [T, D]: LN1 of the last block's input
    d, dh = x.shape[1], attn.head_dim
    alpha = weights[-1].applied[0, :, -1]  # [H, T]
    w_v, b_v, w_o = (t.detach() for t in (attn.qkv.weight[2 * d :], attn.qkv.bias[2 * d :], attn.proj.weight))
    total = torch.zeros(x.shape)
    for h in range(attn.heads):
        cols = slice(h * dh, (h + 1) * dh)
        f = (x @ w_v[cols].T + b_v[cols]) @ w_o[:, cols].T  # [T, D]: what each position adds through head h
        np.testing.assert_allclose(e.per_head[h], (alpha[h][:, None] * f).norm(dim=1).numpy(), atol=1e-5)
        total += alpha[h][:, None] * f
    np.testing.assert_allclose(e.scores, total.norm(dim=1).numpy(), atol=1e-5)


def test_gradxinput_matches_a_finite_difference(model, history):
    """grad . e_j is the derivative of the score when embedding j is scaled by (1 + t), at t = 0."""
    item = model.item_ids_[3]
    e = explain(model, history=history, item=item, method="gradxinput")
    seq = _seq(model, history)
    target = torch.tensor(model.encode_items([item]))
    eps = 1e-2
    for j in (0, len(history) // 2, len(history) - 1):

        def scaled(t, j=j):
            def hook(m, args, out):
                out = out.clone()
                out[:, j] *= 1 + t
                return out

            handle = model.net_.item_emb.register_forward_hook(hook)
            with torch.inference_mode():
                s = model.net_.scores(model.net_.last_hidden(seq))[0, target].item()
            handle.remove()
            return s

        assert e.scores[j] == pytest.approx((scaled(eps) - scaled(-eps)) / (2 * eps), rel=2e-2, abs=2e-3)


def test_attention_methods_are_target_agnostic_and_gradients_are_not(model, history):
    a, b = model.item_ids_[3], model.item_ids_[9]
    for method in ("attention", "rollout", "norm"):
        ea, eb = (
            explain(model, history=history, item=a, method=method),
            explain(model, history=history, item=b, method=method),
        )
        np.testing.assert_allclose(ea.scores, eb.scores)
        assert ea.target_agnostic
    for method in ("gradrollout", "gradxinput", "occlusion"):
        ea, eb = (
            explain(model, history=history, item=a, method=method),
            explain(model, history=history, item=b, method=method),
        )
        assert not np.allclose(ea.scores, eb.scores)
        assert not ea.target_agnostic


def test_long_histories_explain_the_window_the_model_reads(model):
    long = [model.item_ids_[i % model.n_items_] for i in range(35)]
    for method in ("attention", "occlusion"):
        e = explain(model, history=long, method=method)
        assert e.items == long[-model.max_len :]
        assert len(e.scores) == model.max_len


def test_attribute_rejects_bad_input(model):
    one = torch.tensor([1])
    with pytest.raises(ValueError, match="unknown; choose one of"):
        attribute(model.net_, torch.tensor([[1, 2]]), "saliency", one)
    with pytest.raises(ValueError, match="at least one item"):
        attribute(model.net_, torch.tensor([[0, 0]]), "attention", one)
    with pytest.raises(ValueError, match="one known item index per row"):
        attribute(model.net_, torch.tensor([[1, 2]]), "attention", target=torch.tensor([10_000]))


def test_masking_is_the_exact_drop_when_each_item_is_hidden_in_place(model, history):
    """Every position but the latest: the score with that position hidden (`keep`); the latest: the smaller of
    the drops with its content hidden and with it removed."""
    item = model.item_ids_[5]
    seq, target = _seq(model, history), torch.tensor(model.encode_items([item]))
    a = attribute(model.net_, seq, "masking", target)
    net = model.net_
    with torch.inference_mode():
        full = net.score_of(net.last_hidden(seq), target)
        for j in range(seq.shape[1] - 1):
            keep = torch.ones_like(seq, dtype=torch.bool)
            keep[0, j] = False
            hidden, _ = net(seq, keep=keep)
            assert a.scores[0, j].item() == pytest.approx((full - net.score_of(hidden[:, -1], target)).item(), abs=1e-5)
        blank = torch.zeros_like(seq, dtype=torch.bool)
        blank[0, -1] = True
        content_hidden = (full - net.score_of(net(seq, blank=blank)[0][:, -1], target)).item()
    removed = full.item() - _score(model, history[:-1], item)
    assert a.scores[0, -1].item() == pytest.approx(min(content_hidden, removed), abs=1e-5)
    for rule, expected in (("content", content_hidden), ("removal", removed)):
        other = attribute(model.net_, seq, "masking", target, latest=rule)
        assert other.scores[0, -1].item() == pytest.approx(expected, abs=1e-5)
        torch.testing.assert_close(other.scores[0, :-1], a.scores[0, :-1])  # only the latest item's rule differs
    with pytest.raises(DataError, match="latest='max'"):
        attribute(model.net_, seq, "masking", target, latest="max")


def test_integrated_gradients_sum_to_the_score_gain_over_no_items(model, history):
    """Completeness: the attributions add up to score(history) - score(every item embedding zeroed)."""
    item = model.item_ids_[3]
    seq, target = _seq(model, history), torch.tensor(model.encode_items([item]))
    a = attribute(model.net_, seq, "intgrad", target)
    calls: list[int] = []

    def zero_history(m, args, out):  # the first lookup is the history's; later ones embed the scored item
        calls.append(1)
        return torch.zeros_like(out) if len(calls) == 1 else out

    handle = model.net_.item_emb.register_forward_hook(zero_history)
    with torch.inference_mode():
        empty = model.net_.score_of(model.net_.last_hidden(seq), target)
    handle.remove()
    gain = (a.target_score - empty).item()
    assert a.scores.sum().item() == pytest.approx(gain, rel=0.05, abs=0.02)


@pytest.fixture(scope="module")
def hand_built(make_log_module) -> SASRec:
    """One block with uniform attention (queries and keys zero), identity values, no feed-forward, no positions:
    the last hidden state is the latest item plus the mean of all items, so effects are known by hand.
    Item X points the way of the target T, B is orthogonal to it, and the latest item C leans against it.
    """
    rows = [("u", i, t) for t, i in enumerate(["X", "B", "C", "T"] * 3)]
    model = SASRec(dim=4, layers=1, heads=1, positions="none", dropout=0.0, epochs=1, progress=False)
    model.fit(make_log_module(rows))
    emb = {
        "X": [1.0, -1.0, 0.0, 0.0],
        "B": [0.0, 0.0, 1.0, -1.0],
        "C": [-0.3, 0.3, 1.0, -1.0],
        "T": [1.0, -1.0, 0.0, 0.0],
    }
    net = model.net_
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for ln in (net.blocks[0].ln1, net.blocks[0].ln2, net.ln_f):
            ln.weight.fill_(1.0)
        attn = net.blocks[0].attn
        attn.qkv.weight[8:] = torch.eye(4)
        attn.proj.weight.copy_(torch.eye(4))
        for item, vector in emb.items():
            net.item_emb.weight[int(model.encode_items([item])[0])] = torch.tensor(vector)
    return model


@pytest.fixture(scope="module")
def make_log_module():
    def make(rows) -> InteractionLog:
        return InteractionLog.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))

    return make


@pytest.mark.parametrize("method", sorted(SIGNED))
def test_an_item_that_lowers_the_score_gets_a_negative_score(hand_built, method):
    e = explain(hand_built, history=["B", "X", "C"], item="T", method=method)
    scores = dict(zip(e.items, e.scores))
    assert scores["C"] < 0
    if method != "gradxinput":  # X and B reach the output only through a LayerNorm, whose gradient x input is 0
        assert scores["X"] > abs(scores["B"])


def test_occlusion_and_masking_agree_without_positions(hand_built):
    """Without position information, hiding an older item in place and removing it are the same thing."""
    a, b = (explain(hand_built, history=["B", "X", "C"], item="T", method=m) for m in ("masking", "occlusion"))
    np.testing.assert_allclose(a.scores[:-1], b.scores[:-1], atol=1e-5)


def test_the_latest_item_that_lowers_the_score_is_not_cited_but_named_despite(hand_built):
    e = explain(hand_built, history=["B", "X", "C"], item="T")
    assert e.signed and e.method == "masking"
    assert e.top(1)[0][0] == "X"
    cited = e.narrative.split("despite")[0]
    assert "X (" in cited and "C (" not in cited
    assert e.narrative.endswith("despite C")
    assert e.shares[e.items.index("C")] == 0.0


def test_unsigned_methods_do_not_claim_reasons(hand_built):
    e = explain(hand_built, history=["B", "X", "C"], item="T", method="attention")
    assert not e.signed
    assert "because" not in e.narrative and "looked most at" in e.narrative


@pytest.mark.parametrize("method", METHODS)
def test_a_history_of_one_item_is_explained_by_every_method(model, history, method):
    item = model.item_ids_[5]
    a = attribute(model.net_, _seq(model, history[-1:]), method, torch.tensor(model.encode_items([item])))
    assert a.scores.shape == (1, 1) and torch.isfinite(a.scores).all()
    if method == "occlusion":  # without its one item nothing is left to score from: the whole score is its
        torch.testing.assert_close(a.scores[0, 0], a.target_score[0])
    if method == "masking":  # the smaller of the drops with its content hidden and with it removed (the whole score)
        assert a.scores[0, 0] <= a.target_score[0] + 1e-6
