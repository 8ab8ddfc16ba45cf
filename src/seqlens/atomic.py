"""Atomic writes: a failed or interrupted write never leaves a half-written file or model behind.

Everything is written next to its destination under a temporary name and renamed into place,
which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file, written piece by piece, that becomes `path` only if the block succeeds: a temporary
    file in the same directory, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same directory, then rename."""
    with file(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


#: written into a new directory once its block has finished: a copy a kill left behind is whole if it has it
COMPLETE = ".complete"


@contextlib.contextmanager
def directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `path` only if the block succeeds.

    An existing `path` is kept untouched until the new one is complete, then swapped out. A kill between the
    two renames of the swap leaves no `path`: `recover(path)` (run by the next save, and by `load_model`)
    puts the newest whole copy back, and a successful save removes what interrupted ones left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        (tmp / COMPLETE).touch()
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "previous")
        os.replace(tmp, path)
        (path / COMPLETE).unlink()  # only a copy left behind needs to say it is whole
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "previous").exists() and not path.exists():
            os.replace(old / "previous", path)  # the swap failed half-way: put the previous version back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in _leftovers(path):  # what interrupted saves of this path left behind
        shutil.rmtree(leftover, ignore_errors=True)


def recover(path: str | os.PathLike) -> bool:
    """Finish a directory swap a kill interrupted: when `path` is missing, move back the newest whole copy (a
    complete new one, else the previous one) left next to it. True when something was recovered."""
    path = Path(path)
    if path.exists():
        return False
    new = [t for t in _leftovers(path) if t.suffix == ".tmp" and (t / COMPLETE).exists()]
    old = [t / "previous" for t in _leftovers(path) if t.suffix == ".old" and (t / "previous").is_dir()]
    for candidates in (new, old):
        if candidates:
            os.replace(max(candidates, key=lambda p: p.stat().st_mtime), path)
            return True
    return False


def _leftovers(path: Path) -> list[Path]:
    """Temporary directories of interrupted saves of `path` (its hidden `.tmp` and `.old` siblings)."""
    if not path.parent.is_dir():
        return []
    return [p for p in path.parent.glob(f".{path.name}.*") if p.is_dir() and p.suffix in (".tmp", ".old")]
