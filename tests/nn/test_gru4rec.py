"""GRU4RecNet: left padding never reaches the GRU; hidden states match an unpadded run."""

from __future__ import annotations

import torch

from seqlens.nn import GRU4RecConfig, GRU4RecNet


def test_padding_does_not_change_the_hidden_states():
    torch.manual_seed(0)
    net = GRU4RecNet(GRU4RecConfig(n_items=20, dim=8, layers=2, dropout=0.0)).eval()
    seq = torch.tensor([[0, 0, 3, 5, 7], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    hidden, extras = net(seq)
    assert extras is None
    for row, length in enumerate((3, 5, 1)):
        alone, _ = net.gru(net.item_emb(seq[row, -length:])[None])
        torch.testing.assert_close(hidden[row, -length:], alone[0])
        assert (hidden[row, : 5 - length] == 0).all()


def test_empty_history_rows_give_zeros_and_scores_have_padding_at_minus_inf():
    net = GRU4RecNet(GRU4RecConfig(n_items=10, dim=4)).eval()
    hidden, _ = net(torch.tensor([[0, 0, 0], [0, 2, 3]]))
    assert (hidden[0] == 0).all() and torch.isfinite(hidden).all()
    scores = net.scores(net.last_hidden(torch.tensor([[0, 2, 3]])))
    assert scores.shape == (1, 11) and scores[0, 0] == float("-inf")
