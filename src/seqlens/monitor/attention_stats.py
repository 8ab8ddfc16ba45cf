"""Per-layer statistics of the attention that produced a recommendation, cheap enough for every request.

A recommendation is read from the hidden state at the last (most recent) position, so the attention
row that matters is the last query's. Two numbers per layer summarise it, averaged over heads:

- entropy (nats) of that row: low = the model leans on a few history items, high = it averages broadly;
  the maximum possible is log(history length).
- mass on the last item: the weight the last query puts on itself (the most recent item); a model that
  drifts towards "next item after the last one" shows this rising.
- top-1 mass: the largest weight in the row (concentration on one item, wherever it is);
- age: how far back the attended items lie, weight-averaged, as a share of the history (0 = all weight on
  the latest item, 1 = all on the oldest): recency, comparable across history lengths.

Tracked over time (e.g. as Prometheus histograms), shifts in either flag attention drift. The weights
used are the ones that multiplied the values (`applied`), so refined (AWRSR) attention is measured as
it acted; a plain tensor per layer (the older network output) is accepted too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

#: the per-request statistics (`AttentionStats.by_name`), each recorded per layer as f"{name}@{layer}"
STATISTICS = ("entropy", "normalized_entropy", "top1_mass", "last_mass", "age")


@dataclass(frozen=True)
class AttentionStats:
    """`entropy[b, l]`, `last_mass[b, l]`, `top1_mass[b, l]` and `age[b, l]` for batch row b and layer l (head
    means), plus the row lengths."""

    entropy: Tensor
    last_mass: Tensor
    lengths: Tensor
    top1_mass: Tensor
    age: Tensor

    @property
    def layers(self) -> int:
        return int(self.entropy.shape[1])

    def by_name(self) -> dict[str, Tensor]:
        """Every statistic by its name in `STATISTICS`, [B, layers] each: what monitoring records per request
        (built once per batch: the service's window gauges and its request log both read it)."""
        return self._named

    @functools.cached_property
    def _named(self) -> dict[str, Tensor]:
        return {"entropy": self.entropy, "normalized_entropy": self.normalized_entropy(),
                "top1_mass": self.top1_mass, "last_mass": self.last_mass, "age": self.age}  # fmt: skip

    def normalized_entropy(self) -> Tensor:
        """Entropy divided by its maximum log(length): 0 = all weight on one item, 1 = uniform.

        Rows of length 1 have no choice to make and get 0.
        """
        top = torch.log(self.lengths.clamp(min=1).to(self.entropy.dtype))[:, None]
        return torch.where(top > 0, self.entropy / top.clamp(min=1e-12), torch.zeros_like(self.entropy))


def applied_weights(layer_attention: object) -> Tensor:
    """The weights that multiplied V for one layer: `.applied` of an `AttentionWeights`, or the tensor itself."""
    weights = getattr(layer_attention, "applied", layer_attention)
    if not isinstance(weights, Tensor) or weights.dim() != 4:
        raise TypeError(
            f"expected attention weights [batch, heads, T, T] (a tensor or an object with .applied), "
            f"got {type(layer_attention).__name__}"
        )
    return weights


def last_query_stats(attentions: Sequence[object], keep: Tensor) -> AttentionStats:
    """Entropy and last-item mass of the last query's attention row, per batch row and layer.

    `attentions`: one entry per layer, [B, H, T, T] weights (or objects with `.applied`);
    `keep` [B, T]: False at left padding. Padding keys carry zero weight, so they add nothing.
    """
    if len(attentions) == 0:
        raise ValueError("no attention layers given")
    entropy, mass, top1, age = [], [], [], []
    for layer in attentions:
        row = applied_weights(layer)[:, :, -1, :].float()  # [B, H, T]: the last query
        plogp = torch.where(row > 0, row * torch.log(row.clamp(min=1e-30)), torch.zeros_like(row))
        entropy.append((-plogp.sum(-1)).mean(1))
        mass.append(row[:, :, -1].mean(1))
        top1.append(row.amax(-1).mean(1))
        steps_back = torch.arange(row.shape[-1] - 1, -1, -1, dtype=row.dtype)  # [T]: 0 at the latest item
        span = (keep.sum(1) - 1).clamp(min=1).to(row.dtype)  # [B]: steps back to the oldest item
        age.append((row * steps_back).sum(-1).mean(1) / span)
    entropy_, mass_, top1_, age_ = (torch.stack(values, 1) for values in (entropy, mass, top1, age))  # [B, layers]
    return AttentionStats(entropy_, mass_, keep.sum(1), top1_, age_)
