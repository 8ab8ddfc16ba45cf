"""Training in two gloo processes (DistributedDataParallel on CPU): the ranks stay identical step by step, and
with dropout off they take the one-process steps on the same batches."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(out: Path, world: int, dropout: float) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(world):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1"}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out), str(dropout)], env=env))
    for p in procs:
        assert p.wait(timeout=300) == 0
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]


def test_two_ranks_hold_identical_weights_after_every_step(tmp_path):
    ranks = _run(tmp_path, 2, dropout=0.2)
    steps = ranks[0]["fingerprints"]
    assert len(steps) >= 4  # two epochs of a few steps each
    assert steps == ranks[1]["fingerprints"]  # bit for bit: the same averaged gradient, the same update
    # validation is split between the ranks and agreed: the same scores, the same best epoch
    assert [r["ndcg@10"] for r in ranks[0]["history"]] == [r["ndcg@10"] for r in ranks[1]["history"]]
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_ranks_take_the_one_process_steps(tmp_path):
    """Without dropout the only difference is the order of floating-point sums.

    Except for the attention's key bias: softmax ignores a constant added to every key's logit, so its true
    gradient is zero and Adam turns the rounding noise in it into steps of the learning rate's size."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    single = _run(one, 1, dropout=0.0)[0]
    pair = _run(two, 2, dropout=0.0)[0]
    assert len(single["fingerprints"]) == len(pair["fingerprints"])
    a, b = load_file(one / "rank0.safetensors"), load_file(two / "rank0.safetensors")
    for k in a:
        if k.endswith("attn.qkv.bias"):
            dim = len(a[k]) // 3
            a[k][dim : 2 * dim], b[k][dim : 2 * dim] = 0, 0
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert single["history"][-1]["loss"] == pytest.approx(pair["history"][-1]["loss"], rel=1e-4)
    assert single["history"][-1]["ndcg@10"] == pytest.approx(pair["history"][-1]["ndcg@10"], abs=1e-9)
