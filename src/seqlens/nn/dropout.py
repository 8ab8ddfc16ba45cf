"""Dropout whose mask comes from random bytes instead of one random float per element.

On CPU, PyTorch's dropout draws one Mersenne-Twister number per element (`bernoulli_`), which for SASRec
costs more per training step than the attention itself. Here one 64-bit draw gives eight independent
bytes, each kept when it is at least `round(p * 256)`: the same Bernoulli mask with `p` applied in
steps of 1/256 (exact for p = 0.5, 0.25, ...), seeded by `torch.manual_seed` like everything else.
"""

import torch
from torch import Tensor, nn


class Dropout(nn.Dropout):
    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return torch.zeros_like(x)
        n = x.numel()
        bits = torch.empty((n + 7) // 8, dtype=torch.int64, device=x.device).random_(-(2**63), None)
        keep = bits.view(torch.uint8)[:n].view(x.shape) >= round(self.p * 256)
        return x * (keep * (1.0 / (1.0 - self.p)))
