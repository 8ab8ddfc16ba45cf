"""SASRecNet: attention weights per layer, padding, causality, scores, and path equivalence."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from seqlens.nn.attention import REFINEMENTS, SCORES
from seqlens.nn.sasrec import SASRecConfig, SASRecNet

N_ITEMS, MAX_LEN = 20, 8


def make(score="scaled_dot", layers=2, heads=2, dropout=0.3, seed=0, **kw) -> SASRecNet:
    torch.manual_seed(seed)
    cfg = SASRecConfig(
        n_items=N_ITEMS, max_len=MAX_LEN, dim=16, layers=layers, heads=heads, dropout=dropout, score=score, **kw
    )
    return SASRecNet(cfg).eval()


def batch(lengths, t, seed=1):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, N_ITEMS + 1, (len(lengths), t), generator=g)
    keep = torch.stack([torch.arange(t) >= t - n for n in lengths])
    return seq * keep


@pytest.mark.parametrize("score", SCORES)
def test_attention_per_layer(score):
    net = make(score, layers=3)
    seq = batch([0, 3, 6], 6)
    hidden, attentions = net(seq, return_attention=True)
    assert hidden.shape == (3, 6, 16)
    assert len(attentions) == 3
    keep = seq != 0
    for w in (a.applied for a in attentions):
        assert w.shape == (3, 2, 6, 6)
        sums = w.sum(-1)
        valid = keep[:, None, :].expand_as(sums)
        torch.testing.assert_close(sums[valid], torch.ones(int(valid.sum())))
        assert (sums[~valid] == 0).all()
    assert net(seq)[1] is None


@given(lengths=st.lists(st.integers(0, MAX_LEN), min_size=1, max_size=4), score=st.sampled_from(SCORES))
def test_no_nan_and_zero_hidden_at_padding(lengths, score):
    net = make(score)
    t = max(1, max(lengths))
    seq = batch(lengths, t)
    hidden, attentions = net(seq, return_attention=True)
    assert torch.isfinite(hidden).all()
    assert all(torch.isfinite(a.raw).all() and torch.isfinite(a.applied).all() for a in attentions)
    assert (hidden[seq == 0] == 0).all()
    scores = net.scores(net.last_hidden(seq))
    assert torch.isfinite(scores[:, 1:]).all()


def test_scores_padding_column_is_minus_inf():
    net = make()
    scores = net.scores(net.last_hidden(batch([2, 5], 5)))
    assert scores.shape == (2, N_ITEMS + 1)
    assert (scores[:, 0] == float("-inf")).all()
    assert torch.isfinite(scores[:, 1:]).all()


@pytest.mark.parametrize("score", SCORES)
def test_causality_in_eval_mode(score):
    net = make(score)
    seq = batch([5, 7], 7)
    hidden, _ = net(seq)
    for j in range(2, 7):
        changed = seq.clone()
        changed[:, j] = changed[:, j] % N_ITEMS + 1  # another real item
        hidden2, _ = net(changed)
        torch.testing.assert_close(hidden2[:, :j], hidden[:, :j], rtol=0, atol=1e-6)
        assert not torch.allclose(hidden2[:, j], hidden[:, j])


def test_fused_path_equals_explicit_path():
    net = make("scaled_dot")
    seq = batch([0, 2, 6], 6)
    fused, _ = net(seq)
    explicit, _ = net(seq, return_attention=True)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


def test_padding_width_does_not_change_the_prediction():
    net = make()
    seq = batch([3], 3)
    wide = torch.cat([torch.zeros(1, 4, dtype=seq.dtype), seq], dim=1)  # the same history, more left padding
    torch.testing.assert_close(net.last_hidden(wide), net.last_hidden(seq), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("positions", ["from_end", "from_start"])
def test_positions_count_from_the_chosen_end(positions):
    """from_start: an item's position is its index in the history, so appending an item changes nothing
    before it; from_end: the latest item is always at the last position, so every older item moves."""
    net = make(positions=positions)
    seq = batch([4], 4)
    longer = torch.cat([seq, torch.tensor([[5]])], dim=1)
    wide = torch.cat([torch.zeros(1, 3, dtype=seq.dtype), seq], dim=1)
    before, _ = net(seq)
    after, _ = net(longer)
    same = torch.allclose(after[:, :4], before, atol=1e-6)
    assert same == (positions == "from_start")
    torch.testing.assert_close(net.last_hidden(wide), net.last_hidden(seq), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("positions", ["none", "from_end"])
def test_rotary_attention_sees_distances(positions):
    """With rotary attention and no positional embeddings, a position's output depends only on the items up to
    it and how far back each is: the hidden state at the 3rd of 5 items equals the last hidden state of the
    first 3. Embeddings counted from the end break that (the 3rd item is not the latest in the long one)."""
    net = make(positions=positions, rotary=True)
    assert (net.pos_emb is None) == (positions == "none")
    seq = batch([5], 5)
    full, _ = net(seq)
    same = torch.allclose(full[:, 2], net.last_hidden(seq[:, :3]), rtol=1e-5, atol=1e-5)
    assert same == (positions == "none")
    shuffled = seq[:, [1, 0, 2, 3, 4]]  # same items, two of them at swapped distances
    assert not torch.allclose(net.last_hidden(shuffled), net.last_hidden(seq), atol=1e-4)


@pytest.mark.parametrize("score", SCORES)
def test_train_mode_dropout_and_backward(score):
    net = make(score).train()
    seq = batch([3, 6], 6)
    torch.manual_seed(0)
    a, _ = net(seq)
    torch.manual_seed(1)
    b, _ = net(seq)
    assert not torch.allclose(a, b)  # dropout is active in training
    a[seq != 0].sum().backward()
    assert torch.isfinite(net.item_emb.weight.grad).all()
    assert (net.item_emb.weight.grad[0] == 0).all()  # the padding embedding is never trained


def test_eval_mode_is_deterministic():
    net = make()
    seq = batch([3, 6], 6)
    torch.testing.assert_close(net(seq)[0], net(seq)[0], rtol=0, atol=0)


@pytest.mark.parametrize("refinement", REFINEMENTS[1:])
def test_refinement_in_chosen_layers_only(refinement):
    net = make(layers=3, refinement=refinement, rank=4, refine_layers=[-1])
    seq = batch([0, 3, 6], 6)
    _, attentions = net(seq, return_attention=True)
    assert [a.applied is a.raw for a in attentions] == [True, True, False]
    everywhere = make(layers=3, refinement=refinement, rank=4)
    assert not any(a.applied is a.raw for a in everywhere(seq, return_attention=True)[1])


@pytest.mark.parametrize("refinement", REFINEMENTS)
def test_refined_padding_width_and_fused_paths_agree(refinement):
    net = make(refinement=refinement, rank=4)
    seq = batch([3], 3)
    wide = torch.cat([torch.zeros(1, 4, dtype=seq.dtype), seq], dim=1)
    torch.testing.assert_close(net.last_hidden(wide), net.last_hidden(seq), rtol=1e-5, atol=1e-5)

    torch.testing.assert_close(net(seq)[0], net(seq, return_attention=True)[0], rtol=1e-5, atol=1e-5)


def test_the_item_table_kept_for_inference_follows_weight_changes():
    from seqlens.data.items import ItemCodes

    torch.manual_seed(0)
    codes = ItemCodes({"brand": ["a", "b"]}, {"brand": torch.randint(0, 3, (11, 1)).numpy()})
    net = SASRecNet(SASRecConfig(n_items=10, max_len=5, dim=8, features=["brand"]), codes).eval()
    with torch.inference_mode():
        kept = net.item_table().clone()
        assert torch.equal(net.item_table(), kept)  # the second call reuses it
    with torch.no_grad():
        net.attributes.tables[0].weight[1] += 1.0  # what an optimiser step or loading does: an in-place change
    with torch.inference_mode():
        fresh = net.item_emb.weight + net.attributes(torch.arange(11))
        assert torch.equal(net.item_table(), fresh) and not torch.equal(fresh, kept)


def test_the_kept_item_table_is_dropped_when_the_network_trains():
    """The fused Adam changes weights without counting it in their version: training must drop the table."""
    from seqlens.data.items import ItemCodes

    torch.manual_seed(0)
    codes = ItemCodes({"brand": ["a", "b"]}, {"brand": torch.randint(0, 3, (11, 1)).numpy()})
    net = SASRecNet(SASRecConfig(n_items=10, max_len=5, dim=8, features=["brand"], id_dropout=0.0), codes)
    opt = torch.optim.Adam(net.parameters(), lr=0.1, fused=True)
    net.eval()
    with torch.inference_mode():
        before = net.item_table().clone()
    net.train()
    net.item_table().sum().backward()
    opt.step()
    net.eval()
    with torch.inference_mode():
        assert not torch.equal(net.item_table(), before)
        assert torch.equal(net.item_table(), net.item_emb.weight + net.attributes(torch.arange(11)))


def with_distance_bias(seed=0, **kw) -> SASRecNet:
    """A network with a learned relative-position bias, set away from its zero start."""
    net = make(relative_bias=True, **kw)
    torch.manual_seed(seed)
    with torch.no_grad():
        for block in net.blocks:
            block.attn.distance_bias.normal_(0, 2.0)
    return net


def test_distance_bias_shifts_attention_by_distance():
    """A bias that favours distance 0 in every head puts the last query's weight on the latest item."""
    net = make(relative_bias=True, layers=1, heads=2)
    seq = batch([6], 6)
    _, before = net(seq, return_attention=True)
    with torch.no_grad():
        net.blocks[0].attn.distance_bias[:, 0] = 20.0
    _, after = net(seq, return_attention=True)
    assert after[0].applied[0, :, -1, -1].min() > 0.99
    assert before[0].applied[0, :, -1, -1].max() < 0.99


def test_distance_bias_keeps_padding_causality_and_shift_invariance():
    net = with_distance_bias(positions="none")
    seq = batch([3], 3)
    wide = torch.cat([torch.zeros(1, 4, dtype=seq.dtype), seq], dim=1)
    torch.testing.assert_close(net.last_hidden(wide), net.last_hidden(seq), rtol=1e-5, atol=1e-5)
    longer = batch([6], 6)  # without absolute positions, the state one column earlier is the shorter history's
    torch.testing.assert_close(net(longer)[0][:, -2], net.last_hidden(longer[:, :-1]), rtol=1e-5, atol=1e-5)
    changed = longer.clone()
    changed[0, -1] = 1 + longer[0, -1] % N_ITEMS
    torch.testing.assert_close(net(changed)[0][:, :-1], net(longer)[0][:, :-1], rtol=1e-5, atol=1e-5)


def test_attention_dropout_is_its_own_knob():
    assert make(dropout=0.3).blocks[0].attn.dropout == 0.3  # None: the model's dropout, as before
    net = make(dropout=0.3, attention_dropout=0.0)
    assert net.blocks[0].attn.dropout == 0.0 and net.blocks[0].ffn[2].p == 0.3
    net.train()
    seq = batch([6, 4], 6)
    _, weights = net(seq, return_attention=True)  # no dropout on the weights: every row of a real query sums to 1
    rows = weights[0].applied.sum(-1)[seq[:, None].expand(-1, 2, -1) != 0]
    torch.testing.assert_close(rows, torch.ones_like(rows))


def test_attention_entropy_penalty_is_the_weighted_mean_row_entropy():
    net = make(attention_entropy=0.5, dropout=0.0).train()
    seq = batch([0, 3, 6], 6)
    hidden, penalty = net.training_forward(seq)
    _, weights = net(seq, return_attention=True)
    rows = [
        -(a * a.clamp(min=1e-12).log()).sum(-1)[b, h, t]
        for a in (w.applied for w in weights)
        for b in range(3)
        for h in range(2)
        for t in range(6)
        if seq[b, t] != 0
    ]
    torch.testing.assert_close(penalty, 0.5 * torch.stack(rows).mean())
    assert make(dropout=0.0).train().training_forward(seq)[1] == 0  # off by default


def test_interval_buckets_count_doublings_of_the_gap_and_mark_the_first_item_unknown():
    from seqlens.nn.sasrec import INTERVAL_BUCKETS, interval_buckets

    seq = torch.tensor([[0, 0, 4, 5, 6, 7, 8]])
    times = torch.tensor([[0, 0, 100, 100, 101, 104, 10**12]])  # gaps: -, 0 s, 1 s, 3 s, about 32 years
    assert interval_buckets(seq, times).tolist() == [[0, 0, 1, 2, 3, 4, INTERVAL_BUCKETS - 1]]
    assert interval_buckets(seq, None).tolist() == [[0, 0, 1, 1, 1, 1, 1]]  # no timestamps: unknown
    backwards = torch.tensor([[0, 0, 100, 50, 50, 50, 50]])  # out of order: a gap of 0
    assert interval_buckets(seq, backwards)[0, 3] == 2
    from seqlens.data.sequences import UNKNOWN_TIME

    partly = torch.tensor([[0, 0, 100, UNKNOWN_TIME, 101, 102, 104]])  # one time not known: its gaps are unknown
    assert interval_buckets(seq, partly).tolist() == [[0, 0, 1, 1, 1, 3, 3]]


def test_pair_buckets_count_doublings_of_the_time_between_two_items():
    from seqlens.data.sequences import UNKNOWN_TIME
    from seqlens.nn.sasrec import pair_buckets

    seq = torch.tensor([[0, 4, 5, 6]])
    times = torch.tensor([[0, 100, 101, UNKNOWN_TIME]])
    gaps = pair_buckets(seq, times)[0]
    assert gaps[0].tolist() == [0, 0, 0, 0]  # padding
    assert gaps[1, 1] == 2 and gaps[2, 1] == gaps[1, 2] == 3  # the same second; 1 s apart either way
    assert gaps[3, 1] == gaps[1, 3] == 1 and gaps[3, 3] == 1  # a time not known: unknown
    assert pair_buckets(seq, None)[0, 1:, 1:].eq(1).all()  # no timestamps: every gap unknown


def test_time_bias_shifts_attention_by_the_time_between_items():
    """A bias that favours items of the same second puts the last query's weight on them, wherever they sit."""
    net = make(time_bias=True, layers=1, heads=2)
    assert net.reads_time
    seq = batch([6], 6)
    times = torch.tensor([[0, 10**6, 10**6, 2 * 10**6, 3 * 10**6, 10**6]])  # the last item shares its second with 2
    _, before = net(seq, return_attention=True, times=times)
    with torch.no_grad():
        net.blocks[0].attn.time_bias[:, 2] = 20.0  # bucket 2: the same second
    _, after = net(seq, return_attention=True, times=times)
    same = after[0].applied[0, :, -1, [1, 2, 5]].sum(-1)
    assert same.min() > 0.99 and before[0].applied[0, :, -1, [1, 2, 5]].sum(-1).max() < 0.99
    from seqlens.data.sequences import UNKNOWN_TIME

    unknown = torch.full_like(times, UNKNOWN_TIME)  # without times every gap is unknown, as with unknown times
    torch.testing.assert_close(net(seq)[0], net(seq, times=unknown)[0])
    assert not torch.allclose(net(seq)[0], net(seq, times=times)[0])
    # leaving out a position's time makes its gaps unknown: its time group has an effect of its own
    hide = torch.zeros(1, 6, len(net.groups), dtype=torch.bool)
    hide[0, 2, -1] = True
    assert net.groups[-1] == "time"
    assert not torch.allclose(net(seq, times=times, hide=hide)[0], net(seq, times=times)[0])
