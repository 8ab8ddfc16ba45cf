"""Which device training runs on: `device="auto"` and the names torch knows, checked against what this machine has."""

from __future__ import annotations

import os

import torch

from seqlens.errors import DataError


def resolve(name: str) -> torch.device:
    """The torch device `name` asks for: 'auto' is a GPU when torch sees one (CUDA, then Apple's MPS), else the
    CPU. Under torchrun, 'auto' and 'cuda' take the GPU of the process's LOCAL_RANK. A device this machine lacks
    is a DataError that says so, not a failure deep inside training."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DataError(f"device={name!r} is not a device name torch knows (cpu, cuda, cuda:N, mps, auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DataError(
                f"device={name!r}, but this torch ({torch.__version__}) sees no CUDA GPU; use 'cpu' or 'auto'"
            )
        count = torch.cuda.device_count()
        if device.index is None:
            return torch.device("cuda", local % count)
        if device.index >= count:
            raise DataError(f"device={name!r}, but this machine has {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DataError(f"device={name!r}, but MPS (Apple GPUs) is not available to this torch")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DataError(f"device={name!r}: seqlens trains on 'cpu', 'cuda' or 'mps'")
    return device
