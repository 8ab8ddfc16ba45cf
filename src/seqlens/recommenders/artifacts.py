"""Model directories: `model.safetensors` + JSON, written atomically and read without executing code.

Layout: `config.json` (model class, hyper-parameters, library version, artifact format, dataset
fingerprint, config hash), `model.safetensors` (learned tensors and stored histories), `items.json`
(external item ids and titles), `users.json`, `history.json` (training history) and, when known,
`metrics.json`; a feature model adds `features.json` (its attribute vocabularies and each item's value codes),
a model that reads user attributes `user_features.json` (their vocabularies and each user's value codes), and one
that reads request context `context.json` (its vocabularies).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from seqlens import atomic
from seqlens._version import ARTIFACT_FORMAT, __version__
from seqlens.data.codes import ContextCodes, UserCodes
from seqlens.data.items import ItemCodes
from seqlens.data.sequences import Sequences
from seqlens.errors import ArtifactError, DataError, SeqlensError
from seqlens.recommenders.registry import model_class
from seqlens.train.config import DISPLAY_ONLY

if TYPE_CHECKING:  # base imports this module to save: the type that load_model returns, no import at run time
    from seqlens.recommenders.base import Recommender

FILES = ("config.json", "model.safetensors", "items.json", "users.json")


def config_hash(model: Recommender) -> str:
    params = {k: v for k, v in model.get_params().items() if k not in DISPLAY_ONLY}
    blob = json.dumps({"model": type(model).__name__, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_model(model: Recommender, path: str | Path, metrics: dict | None = None) -> Path:
    """Save a fitted model to directory `path`, replacing it only once everything is written."""
    model._check_fitted()
    metrics = metrics if metrics is not None else getattr(model, "metrics_", None)
    config = {
        "format": ARTIFACT_FORMAT,
        "seqlens_version": __version__,
        "model": type(model).__name__,
        "params": model.get_params(),
        "config_hash": config_hash(model),
        "dataset": getattr(model, "dataset_", {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tensors = {f"state.{k}": v.detach().contiguous() for k, v in model._state().items()}
    h = model.histories_
    tensors.update(
        {
            "histories.flat": torch.from_numpy(np.ascontiguousarray(h.flat)),
            "histories.starts": torch.from_numpy(np.ascontiguousarray(h.starts)),
            "histories.lengths": torch.from_numpy(np.ascontiguousarray(h.lengths)),
            **({} if h.times is None else {"histories.times": torch.from_numpy(np.ascontiguousarray(h.times))}),
        }
    )
    items = {"item_ids": list(map(str, model.item_ids_)), "titles": model.item_titles_}
    files = {
        "model.safetensors": st_save(tensors),
        "items.json": json.dumps(items).encode(),
        "users.json": json.dumps(list(map(str, model.user_ids_))).encode(),
        "history.json": json.dumps(getattr(model, "history_", []), indent=1).encode(),
    }
    if metrics is not None:
        files["metrics.json"] = json.dumps(metrics, indent=2).encode()
    codes = getattr(model, "item_codes_", None)  # a feature model's attribute codes of its catalogue
    if codes is not None:  # with the number of items training saw (the cold ones follow them)
        files["features.json"] = json.dumps({**codes.to_json(), "n_warm": int(model.n_warm_)}).encode()
    for attribute, name in (("user_codes_", "user_features.json"), ("context_codes_", "context.json")):
        found = getattr(model, attribute, None)  # a model that reads user attributes or context: their codes
        if found is not None:
            files[name] = json.dumps(found.to_json()).encode()
    config["sha256"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    with atomic.directory(path) as tmp:
        atomic.write_text(tmp / "config.json", json.dumps(config, indent=2))
        for name, data in files.items():
            atomic.write_bytes(tmp / name, data)
    return Path(path)


def _verify_checksums(path: Path, config: dict) -> None:
    """Every file config.json lists a SHA-256 for must still have it (models saved before checksums list none).

    Run after the structural checks, which name what is wrong in a broken file; this catches the rest: a
    changed byte that leaves a file well-formed (a weight, an item id)."""
    listed = config.get("sha256", {})
    if not isinstance(listed, dict):
        raise ArtifactError(f"{path / 'config.json'}: 'sha256' must map file names to checksums")
    for name, expected in listed.items():
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            raise ArtifactError(f"{path / 'config.json'}: 'sha256' lists {name!r}, not a file of the directory")
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{file}: missing; config.json lists its checksum")
        if hashlib.sha256(file.read_bytes()).hexdigest() != expected:
            raise ArtifactError(f"{file}: its SHA-256 differs from the one config.json recorded; the file changed "
                                "after saving or is corrupt")  # fmt: skip


def _read_json(path: Path, kind: type = object):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{path}: byte {e.start} is not UTF-8; the file is corrupt") from None
    if not isinstance(value, kind):
        raise ArtifactError(f"{path}: expected a JSON {kind.__name__}, found {type(value).__name__}")
    return value


def load_model(path: str | Path) -> Recommender:
    """Rebuild a model saved by `save_model`. Never unpickles; refuses other artifact formats."""
    path = Path(path)
    atomic.recover(path)  # a save killed half-way through its directory swap left no model here
    if not path.is_dir():
        raise ArtifactError(f"{path}: not a model directory")
    for name in FILES:
        if not (path / name).exists():
            raise ArtifactError(f"{path / name}: missing; not a complete seqlens model directory")
    config = _read_json(path / "config.json", dict)
    if config.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(
            f"{path / 'config.json'}: artifact format {config.get('format')!r} (seqlens "
            f"{config.get('seqlens_version')}) is not supported by seqlens {__version__}, which reads format "
            f"{ARTIFACT_FORMAT}; retrain or use a matching seqlens version"
        )
    try:
        cls = model_class(config.get("model"))
    except KeyError:
        raise ArtifactError(f"{path / 'config.json'}: unknown model class {config.get('model')!r}") from None
    if not isinstance(config.get("params"), dict):
        raise ArtifactError(f"{path / 'config.json'}: no 'params' mapping (the model's hyper-parameters)")
    try:
        model = cls(**{**cls._legacy_params(), **config["params"]})
        model._validate_params()
    except (TypeError, DataError) as e:
        raise ArtifactError(f"{path / 'config.json'}: parameters do not fit {cls.__name__} ({e})") from None
    try:
        tensors = st_load((path / "model.safetensors").read_bytes())
    except SafetensorError as e:
        raise ArtifactError(f"{path / 'model.safetensors'}: corrupt ({e})") from None
    try:
        _restore(model, path, config, tensors)
    except SeqlensError as e:
        raise ArtifactError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:  # whatever a corrupt file breaks
        raise ArtifactError(f"{path}: corrupt model directory ({type(e).__name__}: {e})") from None
    _verify_checksums(path, config)
    return model


def _restore(model: Recommender, path: Path, config: dict, tensors: dict) -> None:
    items = _read_json(path / "items.json", dict)
    model._set_items(np.array(items["item_ids"], dtype=object), items.get("titles", {}))
    users = np.array(_read_json(path / "users.json", list), dtype=object)
    flat, starts, lengths = (tensors[f"histories.{k}"].numpy() for k in ("flat", "starts", "lengths"))
    times = tensors["histories.times"].numpy() if "histories.times" in tensors else None  # saved when known
    if (
        flat.ndim != 1 or starts.shape != lengths.shape or starts.ndim != 1
        or (len(starts) and (starts.min() < 0 or lengths.min() < 0 or (lengths > len(flat) - starts).any()))
    ):  # fmt: skip  # checked before anything is sized by them: a flipped bit could ask for petabytes
        raise ArtifactError("stored histories: offsets or lengths outside the stored items")
    if times is not None and times.shape != flat.shape:
        raise ArtifactError(f"stored histories: {len(times)} timestamps for {len(flat)} items")
    # models saved before histories left out unknown items may hold them as padding
    histories = Sequences(flat, starts, lengths, times).without_padding()
    if len(users) != len(histories) or len(set(users.tolist())) != len(users):
        raise ArtifactError(f"users.json lists {len(users)} users ({len(set(users.tolist()))} distinct) for "
                            f"{len(histories)} stored histories")  # fmt: skip
    if len(histories.flat) and (histories.flat.min() < 1 or histories.flat.max() > len(items["item_ids"])):
        raise ArtifactError("stored histories hold item indices outside the item list")
    model._set_histories(users, histories)
    model.dataset_ = config.get("dataset", {})
    model.history_ = _read_json(path / "history.json") if (path / "history.json").exists() else []
    if (path / "metrics.json").exists():
        model.metrics_ = _read_json(path / "metrics.json")
    model.config_ = config
    if (path / "features.json").exists():
        features = _read_json(path / "features.json", dict)
        n_warm = features.pop("n_warm", None)
        codes = ItemCodes.from_json(features, str(path / "features.json"))
        if any(len(m) != len(items["item_ids"]) + 1 for m in codes.codes.values()):
            raise ArtifactError(f"{path / 'features.json'}: codes do not have one row per item of items.json")
        if n_warm is not None and (not isinstance(n_warm, int) or not 0 < n_warm <= len(items["item_ids"])):
            raise ArtifactError(f"{path / 'features.json'}: n_warm must count the items training saw, got {n_warm!r}")
        setattr(model, "item_codes_", codes)  # noqa: B010 (only feature models have the attribute)
        model.n_warm_ = n_warm or model.n_warm_  # files written before it was saved: every item counts as seen
    if (path / "user_features.json").exists():
        user_codes = UserCodes.from_json(
            _read_json(path / "user_features.json", dict), str(path / "user_features.json")
        )
        setattr(model, "user_codes_", user_codes)  # noqa: B010 (only models that read user attributes have it)
        model.histories_ = replace(model.histories_, user_codes=model.user_codes_for(model.user_ids_))
    if (path / "context.json").exists():
        context = ContextCodes.from_json(_read_json(path / "context.json", dict), str(path / "context.json"))
        setattr(model, "context_codes_", context)  # noqa: B010 (only models that read context have it)
    model._load_state({k[len("state.") :]: v for k, v in tensors.items() if k.startswith("state.")})
