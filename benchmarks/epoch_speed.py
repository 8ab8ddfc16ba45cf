"""Seconds per training epoch on Beauty, seqlens against a straightforward PyTorch SASRec, in one run.

Both train the same model (max_len=50, dim=64, 2 layers, full-softmax CE) for one epoch on the same
machine, with the same uniformly random batches. The straightforward variant is what a plain
implementation does: each batch padded to its longest history, `F.cross_entropy` over materialised
logits, `nn.Dropout`, the default (unfused) Adam, and glibc's default memory trimming. Each variant runs in its own process (the memory setting is
process-wide). Writes benchmarks/results/epoch_speed.json.

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

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "beauty"


def one_variant(variant: str, epochs: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    import seqlens
    import seqlens.nn.attention
    import seqlens.nn.sasrec
    import seqlens.recommenders.neural as sasrec_module
    import seqlens.train.trainer as trainer_module

    if variant == "straightforward":

        def plain_ce(hidden, targets, item_emb, *args, **kwargs):
            return F.cross_entropy(hidden @ item_emb[1:].T, targets - 1)

        sasrec_module.next_item_loss = plain_ce
        sasrec_module.MICRO_BATCHES = 1
        seqlens.nn.sasrec.Dropout = nn.Dropout
        seqlens.nn.attention.Dropout = nn.Dropout
        trainer_module.keep_freed_memory = lambda: False
        adam = torch.optim.Adam
        torch.optim.Adam = lambda *args, fused=None, **kwargs: adam(*args, **kwargs)

    log = seqlens.read_sequences(DATA / "Beauty_item.txt", timestamps=DATA / "Beauty_time.txt")
    split = seqlens.leave_one_out(log)
    model = seqlens.SASRec(max_len=50, dim=64, layers=2, loss="ce", epochs=epochs, progress=False)
    start = time.perf_counter()
    model.fit(split.train)
    return {
        "variant": variant,
        "seconds_per_epoch": [r["train_seconds"] for r in model.history_],
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
    if not DATA.exists():
        print(f"skip: {DATA} is absent")
        return
    results = {}
    for variant in ("seqlens", "straightforward"):
        out = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--epochs", str(args.epochs)],
            check=True, capture_output=True, text=True,
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
