"""The dataset registry: names, the root, clear errors; the real reads are skipped where the data is absent."""

from pathlib import Path

import pytest

import seqlens
from seqlens.errors import DataError

ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_unknown_name_and_missing_root_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("SEQLENS_DATA", raising=False)
    with pytest.raises(DataError, match="unknown dataset 'imdb'; known: beauty"):
        seqlens.load_dataset("imdb", root=tmp_path)
    with pytest.raises(DataError, match="SEQLENS_DATA"):
        seqlens.load_dataset("beauty")
    with pytest.raises(DataError, match=r"Beauty_item.txt: missing; beauty .* not under the data root"):
        seqlens.load_dataset("beauty", root=tmp_path)
    assert not seqlens.dataset_available("beauty") and not seqlens.dataset_available("beauty", tmp_path)


def test_the_root_comes_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "lastfm").mkdir()
    (tmp_path / "lastfm" / "LastFM.txt").write_text("u1 a b c\nu2 b c\n")
    monkeypatch.setenv("SEQLENS_DATA", str(tmp_path))
    log = seqlens.load_dataset("lastfm")
    assert (log.n_users, log.n_items) == (2, 3) and seqlens.dataset_available("lastfm")


@pytest.mark.parametrize("name", list(seqlens.DATASETS))
def test_every_shared_dataset_reads(name):
    if not seqlens.dataset_available(name, ROOT):
        pytest.skip(f"{ROOT / seqlens.DATASETS[name].path} is absent: the licensed datasets are not redistributed")
    log = seqlens.load_dataset(name, ROOT)
    assert len(log) > 1000 and log.n_users > 100
