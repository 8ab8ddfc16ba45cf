"""Atomic writes: a failed write never leaves a half-written file or directory, and keeps the old one."""

from __future__ import annotations

import os
import stat

import pytest

from seqlens import atomic


def entries(directory):
    return sorted(p.name for p in directory.iterdir())


# --- files ----------------------------------------------------------------------------------------
def test_write_bytes_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "f.bin"
    assert atomic.write_bytes(path, b"one") == path
    assert path.read_bytes() == b"one"
    atomic.write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert entries(path.parent) == ["f.bin"]  # no temporary files left


def test_write_text_is_utf8(tmp_path):
    path = atomic.write_text(tmp_path / "t.txt", "naïve ✓")
    assert path.read_bytes() == "naïve ✓".encode()


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic.write_bytes(path, "not bytes")  # fails inside the write, after the temporary file exists
    assert path.read_bytes() == b"old"
    assert entries(tmp_path) == ["f.txt"]


def test_interrupted_write_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_bytes(path, b"data")
    assert entries(tmp_path) == []


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        written = atomic.write_text(tmp_path / "atomic.txt", "x")
        with atomic.directory(tmp_path / "dir") as tmp:
            (tmp / "f").write_text("x")
        (tmp_path / "plain-dir").mkdir()
    finally:
        os.umask(old)
    assert mode(written) == mode(plain) == 0o644
    assert mode(tmp_path / "dir") == mode(tmp_path / "plain-dir") == 0o755


# --- directories ----------------------------------------------------------------------------------
def test_directory_creates(tmp_path):
    target = tmp_path / "sub" / "model"
    with atomic.directory(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert not target.exists()  # nothing appears until the block succeeds
        (tmp / "a.txt").write_text("new")
    assert entries(target) == ["a.txt"]
    assert entries(target.parent) == ["model"]


def test_directory_replaces_an_existing_one_completely(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic.directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # untouched while the new one is written
    assert entries(target) == ["new.txt"]
    assert entries(tmp_path) == ["model"]  # the old copy is gone too


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_block_keeps_the_existing_directory(tmp_path, error):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(error):
        with atomic.directory(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise error
    assert entries(target) == ["old.txt"] and (target / "old.txt").read_text() == "old"
    assert entries(tmp_path) == ["model"]


def test_failed_block_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic.directory(tmp_path / "model") as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError
    assert entries(tmp_path) == []


def test_failed_swap_keeps_the_existing_directory(tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(target) and str(src).endswith(".tmp"):
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        with atomic.directory(target) as tmp:
            (tmp / "new.txt").write_text("new")
    monkeypatch.undo()
    assert target.is_dir() and entries(target) == ["old.txt"]
    assert entries(tmp_path) == ["model"]


# --- interrupted directory swaps -------------------------------------------------------------------
def _kill_between_the_renames(path, new_content: bytes):
    """What a kill between the two renames of `directory` leaves: the old copy moved aside, the new one whole."""
    old = path.parent / f".{path.name}.abc.old"
    old.mkdir()
    os.replace(path, old / "previous")
    tmp = path.parent / f".{path.name}.def.tmp"
    tmp.mkdir()
    (tmp / "f").write_bytes(new_content)
    (tmp / atomic.COMPLETE).touch()
    return old, tmp


@pytest.mark.fault
def test_a_swap_killed_half_way_is_recovered_with_the_new_copy(tmp_path):
    path = tmp_path / "model"
    with atomic.directory(path) as d:
        (d / "f").write_bytes(b"old")
    _kill_between_the_renames(path, b"new")
    assert not path.exists()
    assert atomic.recover(path)
    assert (path / "f").read_bytes() == b"new"


@pytest.mark.fault
def test_without_a_whole_new_copy_the_previous_one_comes_back(tmp_path):
    path = tmp_path / "model"
    with atomic.directory(path) as d:
        (d / "f").write_bytes(b"old")
    _, tmp = _kill_between_the_renames(path, b"half")
    (tmp / atomic.COMPLETE).unlink()  # killed while still writing: not whole
    assert atomic.recover(path) and (path / "f").read_bytes() == b"old"


@pytest.mark.fault
def test_the_next_save_cleans_what_interrupted_saves_left(tmp_path):
    path = tmp_path / "model"
    with atomic.directory(path) as d:
        (d / "f").write_bytes(b"one")
    (tmp_path / ".model.x.tmp").mkdir()
    (tmp_path / ".model.y.old").mkdir()
    with atomic.directory(path) as d:
        (d / "f").write_bytes(b"two")
    assert entries(tmp_path) == ["model"] and (path / "f").read_bytes() == b"two"
