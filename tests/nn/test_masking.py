"""Every position hidden or removed in turn: the one-pass shortcut equals one forward pass per position."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from seqlens.data.items import ItemCodes
from seqlens.nn import masking
from seqlens.nn.masking import compacted, keep_only, masked_last_hidden, removed_last_hidden
from seqlens.nn.sasrec import SASRecConfig, SASRecNet

CONFIGS = [
    dict(layers=1, heads=1),
    dict(layers=2, heads=2),
    dict(layers=3, heads=2, positions="from_start"),
    dict(layers=2, heads=1, positions="none", rotary=True),
    dict(layers=2, heads=2, score="additive"),
    dict(layers=2, heads=1, score="dot", ffn_dim=24),
    dict(layers=3, heads=1, refinement="additive", refine_layers=[1], rank=4),  # refines a middle layer only
    dict(layers=2, heads=1, refinement="simple", rank=4),  # refines the first and last: one pass each
    dict(layers=1, heads=2, positions="none", rotary=True),
    dict(layers=2, heads=2, positions="none", rotary=True),  # rotary keys of several heads in the last layer
]


def removed_by_definition(net: SASRecNet, seq: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T, D]: the last hidden state with item j removed (older items one column later, its time gone with it),
    one pass per column."""
    out = torch.zeros(*seq.shape, net.cfg.dim)
    for j in range(seq.shape[1]):
        keep = torch.ones_like(seq, dtype=torch.bool)
        keep[:, j] = False
        when = None if times is None else compacted(times, keep & (seq != 0))
        out[:, j] = net.last_hidden(keep_only(seq, keep), when) * (seq[:, j] != 0)[:, None]
    return out


def by_definition(net: SASRecNet, seq: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T, D]: the last hidden state with column j hidden (`keep`), one forward pass per column."""
    out = torch.zeros(*seq.shape, net.cfg.dim)
    for j in range(seq.shape[1] - 1):
        keep = torch.ones_like(seq, dtype=torch.bool)
        keep[:, j] = False
        hidden, _ = net(seq, keep=keep, **({} if times is None else {"times": times}))
        out[:, j] = hidden[:, -1] * (seq[:, j] != 0)[:, None]
    with latest_content_hidden(net):
        out[:, -1] = net.last_hidden(seq, times)
    return out


@contextmanager
def latest_content_hidden(net: SASRecNet):
    """The history's item embeddings with the average item in the last column: the latest item keeps only its
    position."""

    def average_last(module, args, embedded):
        embedded = embedded.clone()
        embedded[:, -1] = net.item_emb.weight[1:].mean(0)
        return embedded

    handle = net.item_emb.register_forward_hook(average_last)
    try:
        yield
    finally:
        handle.remove()


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("pair_chunk", [4096, 7], ids=["one-chunk", "chunks"])
def test_shortcut_equals_one_pass_per_hidden_position(config, pair_chunk, monkeypatch):
    monkeypatch.setattr(masking, "PAIR_CHUNK", pair_chunk)  # the pair rows in one table, or a few at a time
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(n_items=30, max_len=12, dim=16, dropout=0.3, **config)).eval()
    seq = torch.randint(1, 31, (5, 12))
    seq[1, :4] = 0  # left padding
    seq[2, :10] = 0  # a history of two items
    seq[3, :11] = 0  # one item: removing it leaves nothing (a zero state, as the network gives an empty history)
    seq[4] = 0  # an empty history in the batch: zeros, not NaN
    with torch.inference_mode():
        (fast, states), slow = masked_last_hidden(net, seq), by_definition(net, seq)
        torch.testing.assert_close(states, net(seq)[0], atol=2e-5, rtol=1e-4)  # the unchanged history's, on the way
    torch.testing.assert_close(fast, slow, atol=2e-5, rtol=1e-4)
    assert (fast[1, :4] == 0).all()
    with torch.inference_mode():
        fast, slow = removed_last_hidden(net, seq), removed_by_definition(net, seq)
    torch.testing.assert_close(fast, slow, atol=2e-5, rtol=1e-4)
    assert (fast[1, :4] == 0).all()


def test_runs_outside_inference_mode():
    """Called with gradients on (the parameters require them), the shortcut still answers."""
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(n_items=30, max_len=12, dim=16)).eval()
    seq = torch.randint(1, 31, (2, 12))
    with torch.inference_mode():
        expected = masked_last_hidden(net, seq).hidden
    torch.testing.assert_close(masked_last_hidden(net, seq).hidden, expected)
    removed_last_hidden(net, seq)


def test_needs_eval_mode():
    net = SASRecNet(SASRecConfig(n_items=5, max_len=4, dim=8))
    with pytest.raises(RuntimeError, match="eval mode"):
        masked_last_hidden(net, torch.tensor([[1, 2, 3, 4]]))
    with pytest.raises(RuntimeError, match="eval mode"):
        removed_last_hidden(net, torch.tensor([[1, 2, 3, 4]]))


def test_keep_only_removes_items_and_keeps_order():
    seq = torch.tensor([[0, 0, 5, 6, 7, 8]])
    keep = torch.tensor([[True, True, True, False, True, False]])
    assert keep_only(seq, keep).tolist() == [[0, 0, 0, 0, 5, 7]]


def test_any_next_item_network_removes_by_one_pass_per_position():
    from seqlens.nn.gru4rec import GRU4RecConfig, GRU4RecNet

    torch.manual_seed(0)
    net = GRU4RecNet(GRU4RecConfig(n_items=30, dim=16)).eval()
    seq = torch.randint(1, 31, (2, 7))
    seq[1, :3] = 0
    with torch.inference_mode():
        torch.testing.assert_close(net.removed_last_hidden(seq), removed_by_definition(net, seq))


@pytest.mark.parametrize("rotary", [False, True])
def test_without_absolute_positions_the_shorter_history_is_the_state_one_column_earlier(rotary):
    """What masking relies on to get "without the latest item" from the full pass."""
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(n_items=30, max_len=12, dim=16, positions="none", rotary=rotary)).eval()
    seq = torch.randint(1, 31, (3, 12))
    seq[1, :4] = 0
    seq[2, :11] = 0  # one item: nothing left without it
    with torch.inference_mode():
        torch.testing.assert_close(net(seq)[0][:, -2], net.last_hidden(seq[:, :-1]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_a_window_of_one_item_equals_the_definition(config):
    """One column: nothing to pair with (a one-item history explained alone is padded to width 1)."""
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(n_items=30, max_len=12, dim=16, dropout=0.3, **config)).eval()
    seq = torch.tensor([[7], [3]])
    with torch.inference_mode():
        torch.testing.assert_close(masked_last_hidden(net, seq).hidden, by_definition(net, seq), atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(removed_last_hidden(net, seq), removed_by_definition(net, seq))


def test_the_shortcut_holds_for_a_network_reading_item_attributes():
    torch.manual_seed(0)
    codes = ItemCodes(
        {"brand": ["a", "b", "c"], "tags": ["x", "y"]},
        {"brand": torch.randint(0, 4, (31, 1)).numpy(), "tags": torch.randint(0, 3, (31, 2)).numpy()},
    )
    net = SASRecNet(SASRecConfig(n_items=30, max_len=10, dim=16, layers=2, features=["brand", "tags"]), codes).eval()
    seq = torch.randint(1, 31, (2, 10))
    seq[1, :3] = 0
    with torch.inference_mode():
        torch.testing.assert_close(removed_last_hidden(net, seq), removed_by_definition(net, seq), atol=2e-5, rtol=1e-4)
        fast, slow = masked_last_hidden(net, seq).hidden, by_definition(net, seq)
    torch.testing.assert_close(fast[:, :-1], slow[:, :-1], atol=2e-5, rtol=1e-4)


def with_random_bias(bias: str, **cfg) -> SASRecNet:
    """A network whose attention `bias` (a parameter of every block's attention) is set away from its zero start."""
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(n_items=30, dim=16, layers=2, heads=2, **cfg)).eval()
    with torch.no_grad():
        for block in net.blocks:
            getattr(block.attn, bias).normal_(0, 2.0)
    return net


def test_a_distance_bias_is_hidden_and_removed_by_definition():
    """Scores that read distances (not only queries and keys) take the one-pass-per-position path: still exact."""
    net = with_random_bias("distance_bias", max_len=12, relative_bias=True)
    seq = torch.randint(1, 31, (3, 12))
    seq[1, :5] = 0
    with torch.inference_mode():
        torch.testing.assert_close(masked_last_hidden(net, seq).hidden, by_definition(net, seq), atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(removed_last_hidden(net, seq), removed_by_definition(net, seq), atol=2e-5, rtol=1e-4)


def test_time_intervals_stay_when_an_item_is_hidden_and_follow_it_out_when_it_is_removed():
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(n_items=30, max_len=10, dim=16, layers=2, heads=2, time="interval")).eval()
    with torch.no_grad():
        net.time_emb.weight[1:].normal_(0, 1.0)  # intervals that matter
    seq = torch.randint(1, 31, (3, 10))
    seq[1, :3] = 0
    times = torch.cumsum(torch.randint(0, 10**6, (3, 10)), 1) * (seq != 0)
    with torch.inference_mode():
        (fast, states), slow = masked_last_hidden(net, seq, times), by_definition(net, seq, times)
        torch.testing.assert_close(states, net(seq, times=times)[0], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(fast, slow, atol=2e-5, rtol=1e-4)  # the shortcut, with times
        removed = removed_last_hidden(net, seq, times)
        torch.testing.assert_close(removed, removed_by_definition(net, seq, times), atol=2e-5, rtol=1e-4)
        kept_times = removed_by_definition(net, seq, times.roll(1, 1) * (seq != 0))
    assert not torch.allclose(removed, kept_times, atol=1e-3)  # the timestamps are read


def test_compacted_moves_any_values_with_their_items():
    values, keep = torch.tensor([[0, 0, 7, 0, 9]]), torch.tensor([[False, False, True, True, False]])
    assert compacted(values, keep).tolist() == [[0, 0, 0, 7, 0]]  # a kept zero (time 0) stays


def test_a_time_bias_is_hidden_and_removed_by_definition():
    """Scores that read the time between items take the one-pass-per-position path: still exact, and a removed
    item's time goes with it."""
    net = with_random_bias("time_bias", max_len=10, time_bias=True)
    seq = torch.randint(1, 31, (3, 10))
    seq[1, :3] = 0
    times = torch.cumsum(torch.randint(0, 10**6, (3, 10)), 1) * (seq != 0)
    with torch.inference_mode():
        masked = masked_last_hidden(net, seq, times).hidden
        torch.testing.assert_close(masked[:, :-1], by_definition(net, seq, times)[:, :-1], atol=2e-5, rtol=1e-4)
        removed = removed_last_hidden(net, seq, times)
        torch.testing.assert_close(removed, removed_by_definition(net, seq, times), atol=2e-5, rtol=1e-4)
