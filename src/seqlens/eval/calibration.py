"""Calibration of the top-1 softmax probability: does a predicted 0.3 come true 30% of the time?

Scores are treated as logits over the candidate items (history items excluded when asked). One pass
over the users evaluates a whole grid of temperatures at once, so fitting the temperature on the
validation split and measuring it on test costs two passes, with no cache of the score matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqlens.data.sequences import Sequences
from seqlens.eval.protocol import Scorer, scored_batches

TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(5.0), 49))  # about 7% apart


@dataclass(frozen=True)
class TopOneProbabilities:
    """Per user and temperature: the top-1 item's probability, whether it was the target, the target's NLL."""

    temperatures: np.ndarray  # [T]
    confidence: np.ndarray  # [n_users, T]
    correct: np.ndarray  # [n_users] (the argmax does not depend on the temperature)
    nll: np.ndarray  # [n_users, T]; inf where the target is excluded or unknown

    def at(self, temperature: float) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, correct) at the grid temperature nearest to `temperature`."""
        j = int(np.argmin(np.abs(np.log(self.temperatures) - np.log(temperature))))
        return self.confidence[:, j], self.correct

    def best_temperature(self) -> float:
        """The grid temperature with the lowest mean NLL over users whose target can be scored."""
        finite = np.isfinite(self.nll).all(axis=1)
        if not finite.any():
            raise ValueError("no user's target can be scored; cannot fit a temperature")
        return float(self.temperatures[np.argmin(self.nll[finite].mean(axis=0))])


def top_one_probabilities(
    model: Scorer,
    histories: Sequences,
    targets: np.ndarray,
    temperatures: np.ndarray = TEMPERATURES,
    exclude_seen: bool = True,
    batch_size: int = 512,
) -> TopOneProbabilities:
    temps = torch.as_tensor(temperatures, dtype=torch.float32)
    n = len(targets)
    confidence, nll = np.empty((n, len(temps))), np.empty((n, len(temps)))
    correct = np.zeros(n, dtype=bool)
    for rows, scores in scored_batches(model, histories, exclude_seen, batch_size):
        target = torch.from_numpy(targets[rows])
        top_score, top_item = scores.max(dim=1)
        correct[rows] = (top_item == target).numpy() & (targets[rows] > 0)
        target_score = scores.gather(1, target[:, None])[:, 0]
        for j, t in enumerate(temps):  # a loop over ~50 temperatures, vectorised over users and items
            lse = torch.logsumexp(scores / t, dim=1)
            confidence[rows, j] = torch.exp(top_score / t - lse).numpy()
            nll[rows, j] = (lse - target_score / t).numpy()
    nll[targets == 0] = np.inf
    return TopOneProbabilities(np.asarray(temperatures), confidence, correct, nll)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> tuple[float, list[dict]]:
    """Expected calibration error over equal-mass bins (each holds about the same number of users, so no bin
    is nearly empty while one holds most users, as happens with equal-width bins when top-1 probabilities
    are small), weighted by count, and the per-bin table (low/high: the bin's confidence range)."""
    order = np.argsort(confidence, kind="stable")
    table, ece = [], 0.0
    for rows in np.array_split(order, min(bins, len(order))):
        if len(rows) == 0:
            continue
        conf, acc = float(confidence[rows].mean()), float(correct[rows].mean())
        ece += len(rows) / len(order) * abs(acc - conf)
        table.append({"low": float(confidence[rows].min()), "high": float(confidence[rows].max()),
                      "users": len(rows), "confidence": conf, "accuracy": acc})  # fmt: skip
    return float(ece), table
