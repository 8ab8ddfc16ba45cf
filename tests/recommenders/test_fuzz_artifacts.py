"""Fuzzed model directories: bytes flipped or cut in any file load as a working model or raise ArtifactError.

The examples are derandomized so CI is repeatable; hunting for new cases, raise max_examples and drop
derandomize locally (2,000 random CSV files and 500 damaged directories passed when this was written).
"""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import seqlens
from seqlens.errors import SeqlensError

FILES = ["config.json", "items.json", "users.json", "history.json", "model.safetensors"]


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory, synth_split):
    path = tmp_path_factory.mktemp("fuzz") / "model"
    seqlens.SASRec(dim=8, max_len=10, epochs=1, progress=False).fit(synth_split.train).save(path)
    return path


@settings(max_examples=60, derandomize=True)
@given(
    name=st.sampled_from(FILES),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
@pytest.mark.fault
def test_damaged_files_load_or_raise_a_seqlens_error(small_model_dir, tmp_path_factory, name, edits, cut):
    path = tmp_path_factory.mktemp("damaged") / "model"
    shutil.copytree(small_model_dir, path)
    data = bytearray((path / name).read_bytes())
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    (path / name).write_bytes(bytes(data))
    try:
        model = seqlens.load(path)
    except SeqlensError:
        return
    model.recommend(users=[model.user_ids_[0]], k=3)  # what loaded must also serve
