"""Training in several processes: which process this is, joining the group, and the few collectives the loop needs.

torchrun (or `seqlens train --nproc N`, which starts it) launches the processes and describes the group in the
environment (RANK, WORLD_SIZE, MASTER_ADDR, ...); `join_from_env` joins it, gloo on CPU and NCCL on GPUs. The
gradients are averaged by `torch.nn.parallel.DistributedDataParallel` (see `Trainer`); what is here only
agrees on small things: a count, a loss, each rank's validation ranks, each rank's random state. Outside a
process group every function is the one-process identity, so the loop has a single code path.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist


def active() -> bool:
    """Whether this process belongs to a process group of more than one."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0: the one process that shows progress and writes checkpoints, models and reports."""
    return rank() == 0


def join_from_env() -> bool:
    """Join the process group torchrun describes, when it describes one of more than one process.

    The backend is NCCL when this process has a GPU, gloo otherwise. Returns whether a group is active."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return active()


def leave() -> None:
    """Leave the process group (at the end of a run; a no-op outside one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def total(value: float) -> float:
    """The sum of `value` over the ranks (float64, so counts stay exact)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def shard(n: int) -> np.ndarray:
    """This rank's share of n items (every world_size-th, from its rank): what it validates."""
    return np.arange(rank(), n, world_size())


def gathered(part: np.ndarray, n: int) -> np.ndarray:
    """The [n] array whose `shard(n)` entries each rank computed (`part`), assembled on every rank."""
    if not active():
        return part
    parts: list[np.ndarray | None] = [None] * world_size()
    dist.all_gather_object(parts, part)
    out = np.empty(n, dtype=part.dtype)
    for r, p in enumerate(parts):
        out[r :: world_size()] = p
    return out


def every_rank(state: torch.Tensor) -> list[torch.Tensor]:
    """`state` of every rank, in rank order (e.g. each rank's random state, for a checkpoint that resumes all)."""
    if not active():
        return [state]
    states: list[torch.Tensor | None] = [None] * world_size()
    dist.all_gather_object(states, state)
    return [s for s in states if s is not None]
