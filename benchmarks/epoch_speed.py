"""Seconds per training epoch on Beauty, seqlens against a straightforward PyTorch SASRec, in one run.

Both train the same model (max_len=50, dim=64, 2 layers, full-softmax CE) for one epoch on the same
machine, with the same uniformly random batches. The seqlens variant is `SASRec.fit`. The straightforward
variant is `straightforward_fit` below: the same network (`SASRecNet`, same initial weights) in the training
loop a plain implementation writes, with what seqlens does differently written out: each batch padded to its
longest history, `F.cross_entropy` over materialised logits, `nn.Dropout`, the default (unfused) Adam, and
glibc's default memory trimming. Each variant runs in its own process (the memory setting is process-wide).
Writes benchmarks/results/epoch_speed.json.

Usage: python -m benchmarks.epoch_speed [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import seqlens
from benchmarks.core import load

HERE = Path(__file__).resolve().parent
#: the model both variants train (everything else: SASRec's defaults)
PARAMS = dict(max_len=50, dim=64, layers=2, loss="ce", progress=False)


def straightforward_fit(log: seqlens.InteractionLog, **params) -> list[dict]:
    """Train SASRec on `log` as a plain PyTorch implementation would; one record per epoch, like `history_`.

    Same hyper-parameters (`params` over SASRec's defaults), network, initial weights and batches as
    `SASRec(**params).fit(log)`; only the implementation of the training step differs.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    from seqlens.nn.dropout import Dropout
    from seqlens.nn.sasrec import SASRecConfig, SASRecNet
    from seqlens.train.trainer import TrainConfig, random_batches, seed_everything

    params = {**seqlens.SASRec().get_params(), **params}
    train_cfg = TrainConfig(**seqlens.SASRec.schema.of(TrainConfig, params))
    # items numbered 1..n in sorted order, users in log order, as SASRec.fit numbers them
    sequences = [s for s in log.sequences().values() if len(s) >= 2]
    index = {item: i for i, item in enumerate(sorted({i for s in sequences for i in s}), start=1)}
    histories = [[index[i] for i in s] for s in sequences]
    max_len = params["max_len"]

    seed_everything(train_cfg.seed)
    net = SASRecNet(SASRecConfig(n_items=len(index), **seqlens.SASRec.schema.of(SASRecConfig, params)))
    for module in list(net.modules()):  # PyTorch's dropout instead of ours
        for name, child in module.named_children():
            if isinstance(child, Dropout):
                setattr(module, name, nn.Dropout(child.p))
    opt = torch.optim.Adam(net.parameters(), lr=train_cfg.lr, betas=(0.9, 0.98), weight_decay=train_cfg.weight_decay)
    rng = seed_everything(train_cfg.seed)
    batches = random_batches(len(histories), train_cfg.batch_size)

    def padded(batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-item targets, left-padded to the batch's longest history (at most max_len)."""
        width = min(max_len, max(len(histories[r]) - 1 for r in batch))
        x = torch.zeros(len(batch), width, dtype=torch.long)
        y = torch.zeros(len(batch), width, dtype=torch.long)
        for row, r in enumerate(batch):
            h = torch.tensor(histories[r][-(width + 1) :])
            x[row, width - len(h) + 1 :], y[row, width - len(h) + 1 :] = h[:-1], h[1:]
        return x, y

    history = []
    for epoch in range(train_cfg.epochs):
        net.train()
        start, total, count = time.perf_counter(), 0.0, 0
        for batch in batches(rng):
            x, y = padded(batch)
            hidden, _ = net(x)  # [B, T, D]
            logits = hidden[y > 0] @ net.item_emb.weight[1:].T  # [targets, n_items]
            loss = F.cross_entropy(logits, y[y > 0] - 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n = int((y > 0).sum())  # the epoch's loss is the mean over its targets, as seqlens reports it
            total, count = total + float(loss.detach()) * n, count + n
        history.append({"epoch": epoch + 1, "loss": total / count, "train_seconds": time.perf_counter() - start})
    return history


def one_variant(variant: str, epochs: int) -> dict:
    import torch

    log = load("beauty")
    assert log is not None, "the Beauty data is absent"
    train = seqlens.leave_one_out(log).train
    start = time.perf_counter()
    if variant == "seqlens":
        history = seqlens.SASRec(**PARAMS, epochs=epochs).fit(train).history_
    else:
        history = straightforward_fit(train, **PARAMS, epochs=epochs)
    return {
        "variant": variant,
        "seconds_per_epoch": [r["train_seconds"] for r in history],
        "fit_seconds": time.perf_counter() - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(one_variant(args.variant, args.epochs)))
        return
    if load("beauty") is None:
        print("skip: the Beauty data is absent")
        return
    results = {}
    for variant in ("seqlens", "straightforward"):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.epoch_speed", "--variant", variant, "--epochs", str(args.epochs)],
            check=True, capture_output=True, text=True, cwd=HERE.parent,
        )  # fmt: skip
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        print(variant, results[variant])
    ours = statistics.median(results["seqlens"]["seconds_per_epoch"])
    plain = statistics.median(results["straightforward"]["seconds_per_epoch"])
    results["speedup"] = plain / ours
    print(f"median seconds per epoch: seqlens {ours:.1f}, straightforward {plain:.1f}, speed-up {plain / ours:.2f}x")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "epoch_speed.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
