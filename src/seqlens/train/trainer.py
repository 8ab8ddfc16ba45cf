"""The training loop every neural model shares: Adam, early stopping, progress, seeding, Ctrl-C safety.

The loop knows nothing about recommendation: a model hands it a loss for a batch of example indices and a
validation function returning metrics. Early stopping keeps the weights of the best validation epoch.
On Ctrl-C the state at the end of the last completed epoch is saved as a resumable checkpoint, so a
resumed run continues exactly as an uninterrupted one would have.

In a process group (torchrun, `seqlens train --nproc N`; see `distributed.py`) every rank draws the same
batches and computes the loss of its share of each; DistributedDataParallel averages the gradients, and the
shares are weighted so that the step is the one-process step on the whole batch. Rank 0 alone shows
progress and writes checkpoints; a checkpoint holds every rank's random state.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from seqlens.errors import ArtifactError
from seqlens.train import distributed
from seqlens.train.checkpoint import (
    load_checkpoint,
    numpy_rng_from_state,
    numpy_rng_state,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from seqlens.train.config import DISPLAY_ONLY as DISPLAY_ONLY  # declared in config.py (torch-free), importable here
from seqlens.train.config import RESUMABLE, TrainConfig
from seqlens.train.memory import keep_freed_memory


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While training, SIGTERM (what schedulers and `kill` send) stops it like Ctrl-C: a resumable checkpoint
    is written. Only the main thread can own signal handlers; elsewhere SIGTERM keeps its default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C once the resumable checkpoint is on disk; `.checkpoint` says where."""

    def __init__(self, checkpoint: Path):
        super().__init__(f"training interrupted; resume with resume={str(checkpoint)!r}")
        self.checkpoint = checkpoint


def random_batches(n_examples: int, batch_size: int) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """Shuffle all examples each epoch and cut them into batches."""

    def batches(rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(n_examples)
        return [order[lo : lo + batch_size] for lo in range(0, n_examples, batch_size)]

    return batches


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@dataclass
class _Snapshot:
    """Everything needed to continue after a completed epoch."""

    epoch: int
    module: dict
    optimizer: dict
    torch_rng: list[torch.Tensor]  # every rank's, in rank order
    numpy_rng: dict
    best_state: dict | None
    best_score: float
    best_epoch: int
    bad_epochs: int
    history: list


class _WeightedLoss(nn.Module):
    """A rank's loss, weighted by its share of the batch's targets: DistributedDataParallel averages the ranks'
    gradients, which then equal the gradient of the mean loss over the whole batch. It is a module because
    DistributedDataParallel synchronises the gradients of what its wrapped module's forward computed."""

    def __init__(self, module: nn.Module, loss_fn: Callable[[np.ndarray], tuple[Tensor, int]]):
        super().__init__()
        self.module, self.loss_fn = module, loss_fn

    def forward(self, batch: np.ndarray) -> tuple[Tensor, float, int]:
        """(the loss to differentiate, this rank's summed loss and its number of targets, for display)."""
        loss, n = self.loss_fn(batch)
        share = n * distributed.world_size() / max(distributed.total(n), 1.0)
        return loss * share, float(loss.detach()) * n, n


class Trainer:
    """`loss_fn(batch)` returns the mean loss over the batch's targets and their number (the weight of a rank's
    share of a batch when several processes train)."""

    def __init__(
        self,
        module: torch.nn.Module,
        loss_fn: Callable[[np.ndarray], tuple[Tensor, int]],
        batches: Callable[[np.random.Generator], list[np.ndarray]],
        config: TrainConfig,
        validate: Callable[[], dict[str, float]] | None = None,
        checkpoint_dir: str | Path | None = None,
    ):
        self.module, self.loss_fn, self.batches = module, loss_fn, batches
        self.cfg, self.validate, self.progress = config, validate, config.progress
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None

    def fit(self, resume: str | Path | None = None) -> list[dict]:
        """Train; returns the per-epoch history (loss, mean gradient norm, seconds, validation metrics, 'best' flag)."""
        cfg = self.cfg
        keep_freed_memory()
        rng = seed_everything(cfg.seed)
        if distributed.rank() > 0:  # other dropout masks per rank; batches stay the same on every rank (`rng`)
            torch.manual_seed(cfg.seed + 7919 * distributed.rank())
        # the gradients of the weighted loss, averaged over the ranks (buffers are not trained: not synced per step)
        self.step: nn.Module = _WeightedLoss(self.module, self.loss_fn)
        if distributed.active():
            self.step = DistributedDataParallel(self.step, forward_sync_buffers=False)
        # fused: one kernel for the whole update instead of a dozen per parameter (a third of the step time)
        opt = torch.optim.Adam(
            self.module.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay, fused=True
        )
        snap = _Snapshot(0, {}, {}, [torch.get_rng_state()], numpy_rng_state(rng), None, -np.inf, -1, 0, [])
        if resume is not None:
            snap = self._restore(resume, opt)
            rng = numpy_rng_from_state(snap.numpy_rng)
        else:
            snap = self._snapshot(0, opt, rng, snap)
        with self._progress() as bar, _sigterm_as_interrupt():
            epochs_task = bar.add_task("epochs", total=cfg.epochs, completed=snap.epoch, info="")
            batch_task = bar.add_task("batches", total=None, info="")
            try:
                for epoch in range(snap.epoch, cfg.epochs):
                    record = self._epoch(epoch, opt, rng, bar, batch_task)
                    snap = self._after_epoch(record, opt, rng, snap)
                    bar.update(epochs_task, advance=1, info=self._describe(record, snap))
                    logged = self.progress and distributed.is_main() and not bar.console.is_terminal
                    if logged:  # logs get one line per epoch
                        bar.console.print(f"epoch {record['epoch']}: {self._describe(record, snap)}", highlight=False)
                    if self.validate and snap.bad_epochs >= cfg.patience:
                        break
            except KeyboardInterrupt:
                if self.checkpoint_dir is None:
                    raise
                if not distributed.is_main():  # rank 0 writes the checkpoint, with every rank's state
                    raise TrainingInterrupted(self.checkpoint_dir) from None
                try:
                    saved = self._save(snap)
                except OSError as e:  # a full disk, say: the write is atomic, so an older checkpoint is intact
                    raise ArtifactError(
                        f"{self.checkpoint_dir}: interrupted, and the checkpoint could not be written "
                        f"({e.strerror or e}); a checkpoint already there is left as it was"
                    ) from None
                raise TrainingInterrupted(saved) from None
        if snap.best_state is not None:
            self.module.load_state_dict(snap.best_state)
        done = self.checkpoint_dir if resume is not None and Path(resume) == self.checkpoint_dir else None
        if done is not None and distributed.is_main():
            shutil.rmtree(done, ignore_errors=True)  # the run it saved is finished
        return snap.history

    # --- one epoch ---------------------------------------------------------------------------------
    def _epoch(self, epoch: int, opt, rng: np.random.Generator, bar: Progress, task) -> dict:
        self.module.train()
        start, total, count = time.perf_counter(), 0.0, 0.0
        norms: list[Tensor] = []  # each step's gradient norm, read once at the end (no device sync per step)
        batches = self.batches(rng)  # the same on every rank; each takes every world_size-th example of a batch
        bar.reset(task, total=len(batches))
        for batch in batches:
            if len(batch) < distributed.world_size():  # a last batch too small to give every rank a share
                continue
            loss, summed, n = self.step(batch[distributed.rank() :: distributed.world_size()])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grads = [torch.linalg.vector_norm(p.grad) for p in self.module.parameters() if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(()))
            opt.step()
            total, count = total + summed, count + n
            bar.update(task, advance=1)
        mean_loss = distributed.total(total) / max(distributed.total(count), 1.0)  # per target, over all ranks
        record = {"epoch": epoch + 1, "loss": mean_loss, "train_seconds": time.perf_counter() - start,
                  # the mean L2 norm of the whole gradient over the epoch's steps (how training converges)
                  "grad_norm": float(torch.stack(norms).mean()) if norms else float("nan")}  # fmt: skip
        if self.validate:
            self.module.eval()
            t0 = time.perf_counter()
            record.update(self.validate())
            record["valid_seconds"] = time.perf_counter() - t0
        return record

    def _after_epoch(self, record: dict, opt, rng, snap: _Snapshot) -> _Snapshot:
        if self.validate:
            score = record[self.cfg.monitor]
            if score > snap.best_score:
                snap.best_score, snap.best_epoch, snap.bad_epochs = score, record["epoch"], 0
                snap.best_state = copy.deepcopy(self.module.state_dict())
            else:
                snap.bad_epochs += 1
                if self.cfg.lr_patience and snap.bad_epochs % self.cfg.lr_patience == 0:
                    for group in opt.param_groups:  # kept in the optimizer's state, so a resume continues it
                        group["lr"] *= 0.5
        record["lr"] = opt.param_groups[0]["lr"]
        record["best"] = record["epoch"] == snap.best_epoch
        snap.history.append(record)
        return self._snapshot(record["epoch"], opt, rng, snap)

    def _snapshot(self, epoch: int, opt, rng, snap: _Snapshot) -> _Snapshot:
        snap.epoch = epoch
        snap.module = copy.deepcopy(self.module.state_dict())
        snap.optimizer = copy.deepcopy(opt.state_dict())
        snap.torch_rng = distributed.every_rank(torch.get_rng_state())
        snap.numpy_rng = copy.deepcopy(numpy_rng_state(rng))
        return snap

    # --- checkpoints -------------------------------------------------------------------------------
    def _save(self, snap: _Snapshot) -> Path:
        opt_tensors, opt_meta = optimizer_to_tensors(snap.optimizer)
        tensors = {f"module.{k}": v for k, v in snap.module.items()}
        tensors.update(opt_tensors)
        tensors["torch_rng"] = torch.stack(snap.torch_rng)  # [ranks, state]
        if snap.best_state is not None:
            tensors.update({f"best.{k}": v for k, v in snap.best_state.items()})
        state = {
            "epoch": snap.epoch,
            "optimizer": opt_meta,
            "numpy_rng": snap.numpy_rng,
            "best_score": None if snap.best_epoch < 0 else snap.best_score,
            "best_epoch": snap.best_epoch,
            "bad_epochs": snap.bad_epochs,
            "history": snap.history,
            "config": asdict(self.cfg),
            "world_size": len(snap.torch_rng),
        }
        assert self.checkpoint_dir is not None, "saved only when a checkpoint directory is set"
        return save_checkpoint(self.checkpoint_dir, tensors, state)

    def _restore(self, path: str | Path, opt) -> _Snapshot:
        tensors, state = load_checkpoint(path)
        module = {k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")}
        best = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")} or None
        self._check_resumable(path, state.get("config", {}), module)
        saved_world = state.get("world_size", 1)
        if saved_world != distributed.world_size():
            raise ArtifactError(f"{path}: the checkpoint was written by {saved_world} training process(es); resume "
                                f"with as many (this run has {distributed.world_size()})")  # fmt: skip
        self.module.load_state_dict(module)
        optimizer_from_tensors(opt, tensors, state["optimizer"])
        rng_states = list(tensors["torch_rng"].reshape(saved_world, -1))  # checkpoints of one process held one state
        torch.set_rng_state(rng_states[distributed.rank()])
        best_score = -np.inf if state["best_score"] is None else state["best_score"]
        return _Snapshot(
            state["epoch"], module, opt.state_dict(), rng_states, state["numpy_rng"], best, best_score,
            state["best_epoch"], state["bad_epochs"], state["history"],
        )  # fmt: skip

    def _check_resumable(self, path: str | Path, saved: dict, module: dict[str, torch.Tensor]) -> None:
        """Refuse a resume that would silently train otherwise than asked: other training settings than the
        checkpoint's (only `epochs` and `patience` may change), or a network of other shapes."""
        changed = {k: (saved[k], v) for k, v in asdict(self.cfg).items() if k in saved and k not in RESUMABLE
                   and saved[k] != v}  # fmt: skip
        if changed:
            listed = ", ".join(f"{k}={was!r} in the checkpoint, {now!r} now" for k, (was, now) in changed.items())
            raise ArtifactError(f"{path}: cannot resume with other settings ({listed}); use the checkpoint's, "
                                "or start over without resuming")  # fmt: skip
        own = self.module.state_dict()
        differ = sorted(
            {k for k in own if k not in module or module[k].shape != own[k].shape} | (module.keys() - own.keys())
        )
        if differ:
            raise ArtifactError(
                f"{path}: the checkpoint's network differs from this model's in {', '.join(differ[:4])}"
                + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
                + "; resume with the hyper-parameters it was trained with (e.g. the same dim and layers)"
            )

    # --- display -----------------------------------------------------------------------------------
    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"), disable=not (self.progress and distributed.is_main()), transient=False,
        )  # fmt: skip

    def _describe(self, record: dict, snap: _Snapshot) -> str:
        text = f"loss {record['loss']:.4f}  {record['train_seconds']:.1f}s"
        if self.cfg.monitor in record:
            text += f"  valid {self.cfg.monitor} {record[self.cfg.monitor]:.4f} (best {snap.best_score:.4f} @ {snap.best_epoch})"
        return text
