"""Resumable training checkpoints in safetensors + JSON: loading one never executes code (no pickle)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from seqlens import atomic
from seqlens.errors import ArtifactError

TENSORS, STATE = "checkpoint.safetensors", "checkpoint.json"


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], state: dict) -> Path:
    """Write a checkpoint directory atomically: tensors (model, optimizer, RNG) and JSON state."""
    with atomic.directory(path) as tmp:
        atomic.write_bytes(tmp / TENSORS, st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))
        atomic.write_text(tmp / STATE, json.dumps(state, indent=1))
    return Path(path)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    for name in (TENSORS, STATE):
        if not (path / name).exists():
            raise ArtifactError(f"{path / name}: missing; not a seqlens training checkpoint")
    return st_load((path / TENSORS).read_bytes()), json.loads((path / STATE).read_text())


def optimizer_to_tensors(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state_dict into tensors (for safetensors) and JSON-able hyper-parameters."""
    tensors = {
        f"opt.{pid}.{name}": (v if torch.is_tensor(v) else torch.tensor(v))
        for pid, s in sd["state"].items()
        for name, v in s.items()
    }
    return tensors, {"param_groups": sd["param_groups"]}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def numpy_rng_state(rng: np.random.Generator) -> dict:
    return dict(rng.bit_generator.state)


def numpy_rng_from_state(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng
