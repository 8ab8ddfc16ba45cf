"""Sequences: flat storage, left-padded batches, next-item training pairs, explode()."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqlens.data.sequences import PAD, Sequences

SEQS = [[1, 2, 3], [4], [5, 6, 7, 8, 9]]


@pytest.fixture
def seqs() -> Sequences:
    return Sequences.from_lists(SEQS)


def test_from_lists_and_indexing(seqs):
    assert len(seqs) == 3
    assert seqs.starts.tolist() == [0, 3, 4] and seqs.lengths.tolist() == [3, 1, 5]
    assert [seqs[i].tolist() for i in range(3)] == SEQS


def test_padded_left_pads_to_the_longest_row(seqs):
    out = seqs.padded(np.arange(3), max_len=10)
    assert out.tolist() == [[0, 0, 1, 2, 3], [0, 0, 0, 0, 4], [5, 6, 7, 8, 9]]


def test_padded_caps_at_max_len_keeping_the_most_recent(seqs):
    out = seqs.padded(np.arange(3), max_len=3)
    assert out.tolist() == [[1, 2, 3], [0, 0, 4], [7, 8, 9]]


def test_padded_width_follows_the_selected_rows(seqs):
    assert seqs.padded(np.array([1, 0]), max_len=50).tolist() == [[0, 0, 4], [1, 2, 3]]
    assert seqs.padded(np.array([1]), max_len=50).tolist() == [[4]]


def test_padded_drop_last(seqs):
    out = seqs.padded(np.arange(3), max_len=10, drop_last=1)
    assert out.tolist() == [[0, 0, 1, 2], [0, 0, 0, 0], [5, 6, 7, 8]]
    assert seqs.padded(np.array([1]), max_len=10, drop_last=1).tolist() == [[PAD]]  # nothing left: one PAD column


def test_padded_on_non_contiguous_views():
    flat = np.array([10, 11, 12, 13, 14, 15])
    view = Sequences(flat, starts=np.array([4, 0, 2]), lengths=np.array([2, 2, 0]))
    assert view.padded(np.arange(3), max_len=5).tolist() == [[14, 15], [10, 11], [0, 0]]


def test_padded_all_empty_sequences():
    empty = Sequences.from_lists([[], []])
    assert empty.padded(np.arange(2), max_len=5).tolist() == [[PAD], [PAD]]


def test_training_pair_targets_are_next_items(seqs):
    inputs, targets = seqs.training_pair(np.arange(3), max_len=3)
    assert inputs.tolist() == [[0, 1, 2], [0, 0, 0], [6, 7, 8]]
    assert targets.tolist() == [[0, 2, 3], [0, 0, 0], [7, 8, 9]]


@given(
    lists=st.lists(st.lists(st.integers(1, 9), min_size=0, max_size=8), min_size=1, max_size=6),
    max_len=st.integers(1, 10),
)
def test_training_pair_alignment_property(lists, max_len):
    if not any(lists):
        lists = lists + [[1]]
    s = Sequences.from_lists(lists)
    rows = np.arange(len(lists))
    inputs, targets = s.training_pair(rows, max_len)
    assert inputs.shape == targets.shape
    assert inputs.shape[1] == max(1, min(max_len, max(len(x) - 1 for x in lists)))
    for r, seq in enumerate(lists):
        n = min(max(len(seq) - 1, 0), max_len)  # number of (input, target) pairs in this row
        width = inputs.shape[1]
        assert (inputs[r, : width - n] == PAD).all() and (targets[r, : width - n] == PAD).all()
        if n:
            assert inputs[r, width - n :].tolist() == seq[len(seq) - 1 - n : len(seq) - 1]
            assert targets[r, width - n :].tolist() == seq[len(seq) - n :]
    # padding of inputs and targets coincides
    assert ((inputs == PAD) == (targets == PAD)).all()


def test_explode(seqs):
    owner, items = seqs.explode()
    assert owner.tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2]
    assert items.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_explode_on_a_reordered_view():
    flat = np.array([10, 11, 12, 13, 14, 15])
    view = Sequences(flat, starts=np.array([4, 0, 3, 1]), lengths=np.array([2, 3, 0, 1]))
    owner, items = view.explode()
    assert owner.tolist() == [0, 0, 1, 1, 1, 3]
    assert items.tolist() == [14, 15, 10, 11, 12, 11]


def test_without_padding_drops_unknown_items(seqs):
    assert seqs.without_padding() is seqs
    holed = Sequences.from_lists([[1, PAD, 3], [PAD], [], [5, 6, PAD]])
    out = holed.without_padding()
    assert [out[i].tolist() for i in range(len(out))] == [[1, 3], [], [], [5, 6]]


def test_a_subset_keeps_the_chosen_sequences_in_order():
    seqs = Sequences.from_lists([[1, 2], [3], [4, 5, 6]])
    assert [list(s) for s in (seqs.subset(np.array([2, 0]))[i] for i in range(2))] == [[4, 5, 6], [1, 2]]
    mask = seqs.subset(np.array([True, False, True]))
    assert len(mask) == 2 and list(mask[1]) == [4, 5, 6] and mask.flat is seqs.flat
