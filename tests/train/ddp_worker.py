"""One rank of the distributed-training tests (run as a script: RANK, WORLD_SIZE, MASTER_* in the environment).

Trains a tiny SASRec on a small synthetic log and writes, to OUT/rank{RANK}.json, a fingerprint of the weights
after every optimizer step, and to OUT/rank{RANK}.safetensors the final weights.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from seqlens import SASRec, synthetic_log
from seqlens.data import leave_one_out
from seqlens.train import distributed

out, dropout = Path(sys.argv[1]), float(sys.argv[2])
torch.set_num_threads(1)
distributed.join_from_env()
fingerprints: list[list[float]] = []
step = torch.optim.Adam.step


def step_and_record(self, *args, **kwargs):
    result = step(self, *args, **kwargs)
    # a few numbers that change with every weight: their sums and a fixed random projection of each tensor
    fingerprints.append([float(p.detach().double().sum()) for group in self.param_groups for p in group["params"]])
    return result


torch.optim.Adam.step = step_and_record  # type: ignore[method-assign]
split = leave_one_out(synthetic_log(n_users=120, n_items=60, mean_length=12, seed=3))
model = SASRec(max_len=16, dim=16, heads=2, layers=2, dropout=dropout, epochs=2, batch_size=32, seed=5, progress=False)
model.fit(split.train, valid=split.valid)
rank = distributed.rank()
(out / f"rank{rank}.json").write_text(json.dumps({"fingerprints": fingerprints, "history": model.history_}))
save_file({k: v.contiguous() for k, v in model.net_.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
distributed.leave()
