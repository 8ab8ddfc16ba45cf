"""A model store: numbered versions of saved models, one of them promoted, with rollback.

Layout of a store directory:

    store.json      which versions exist (when added, from where, the model's class and config hash, a note)
                    and the promotion history, most recent last: the promoted version is its last entry
    v1/, v2/, ...   model directories as `save_model` writes them, never changed once added
    .lock           taken (flock) around every change, so two commands or service workers cannot interleave

`rollback` pops the promotion history: it returns to the version promoted before the current one, and a
second rollback goes one further back. Promoting pushes. `seqlens serve STORE` serves the promoted version,
reloads it on `POST /v1/admin/reload` and rolls back on `POST /v1/admin/rollback`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from seqlens import atomic
from seqlens.errors import ArtifactError, DataError
from seqlens.recommenders.artifacts import config_hash, load_model

INDEX = "store.json"
STORE_FORMAT = 1


@dataclass(frozen=True)
class Version:
    """One stored model version, as `ModelStore.versions` lists it."""

    number: int
    added: str  # ISO time, UTC
    source: str  # the directory it was copied from
    model: str  # the model class
    config_hash: str
    note: str
    promoted: bool


class ModelStore:
    """The store at `root` (see the module docstring). With `create=True` and no store there, a new one: empty
    until its first change (`add`) writes it, so that adding a model that does not load leaves nothing behind."""

    def __init__(self, root: str | Path, create: bool = False):
        self.root = Path(root)
        exists = (self.root / INDEX).is_file()
        self.create = create and not exists
        if exists:
            return
        if not create:
            raise ArtifactError(f"{self.root}: not a model store (no {INDEX}); `seqlens models add` creates one")
        if self.root.exists() and any(p.name != ".lock" for p in self.root.iterdir()):
            raise ArtifactError(f"{self.root}: exists and is not empty; a new model store needs an empty directory")

    @staticmethod
    def is_store(path: str | Path) -> bool:
        return (Path(path) / INDEX).is_file()

    # --- reading ---------------------------------------------------------------------------------------
    def versions(self) -> list[Version]:
        index = self._read()
        current = index["promoted"][-1] if index["promoted"] else None
        return [
            Version(int(n), v["added"], v["source"], v["model"], v["config_hash"], v.get("note", ""), int(n) == current)
            for n, v in sorted(index["versions"].items(), key=lambda kv: int(kv[0]))
        ]

    def promoted(self) -> int | None:
        """The version being served, or None before the first promotion."""
        history = self._read()["promoted"]
        return history[-1] if history else None

    def previous(self) -> int | None:
        """The version a rollback would return to, or None when there is none."""
        history = self._read()["promoted"]
        return history[-2] if len(history) > 1 else None

    def path(self, version: int) -> Path:
        """The model directory of `version` (DataError if the store has no such version)."""
        if str(version) not in self._read()["versions"]:
            raise DataError(f"{self.root}: no version {version}; `seqlens models list {self.root}` shows them")
        return self.root / f"v{version}"

    # --- changing --------------------------------------------------------------------------------------
    def add(self, model_dir: str | Path, note: str = "", promote: bool = False) -> int:
        """Copy the saved model at `model_dir` in as the next version (checked to load first); its number."""
        model_dir = Path(model_dir)
        model = load_model(model_dir)  # refuse what would not load before it is numbered
        with self._locked() as index:
            number = max((int(n) for n in index["versions"]), default=0) + 1
            with atomic.directory(self.root / f"v{number}") as tmp:
                shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
            index["versions"][str(number)] = {
                "added": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": str(model_dir.resolve()),
                "model": type(model).__name__,
                "config_hash": config_hash(model),
                "note": note,
            }
            if promote:
                index["promoted"].append(number)
        return number

    def promote(self, version: int) -> int:
        """Serve `version` from now on (a running service picks it up on reload); returns it."""
        with self._locked() as index:
            if str(version) not in index["versions"]:
                raise DataError(f"{self.root}: no version {version}; `seqlens models list {self.root}` shows them")
            if not index["promoted"] or index["promoted"][-1] != version:
                index["promoted"].append(version)
        return version

    def rollback(self, expect: int | None = None) -> tuple[int, int]:
        """Return to the version promoted before the current one: (from, to).

        `expect` guards a check-then-act: the service loads the previous version first, then rolls back only
        if the store still holds what it loaded (another rollback in between raises DataError instead).
        """
        with self._locked() as index:
            history = index["promoted"]
            if len(history) < 2:
                raise DataError(f"{self.root}: nothing to roll back to (promotion history {history})")
            if expect is not None and history[-2] != expect:
                raise DataError(
                    f"{self.root}: the store changed meanwhile (would return to {history[-2]}, not {expect})"
                )
            current = history.pop()
        return current, history[-1]

    # --- the index ---------------------------------------------------------------------------------------
    def _read(self) -> dict:
        path = self.root / INDEX
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if self.create:  # a new store before its first change
                return {"format": STORE_FORMAT, "versions": {}, "promoted": []}
            raise ArtifactError(f"{self.root}: not a model store (no {INDEX})") from None
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
        if not isinstance(index, dict) or index.get("format") != STORE_FORMAT:
            raise ArtifactError(f"{path}: not a format-{STORE_FORMAT} model store index")
        return index

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        """The index to change, under the store's lock (flock on `.lock`); written back (atomically) when the
        block succeeds: a new store's first change creates it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                index = self._read()
                yield index
                atomic.write_text(self.root / INDEX, json.dumps(index, indent=1))
                self.create = False
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
