"""Bias audit: does the model attend to, or recommend, the values of an item attribute (brand, genre)
out of proportion to the data?

For each value of the attribute (its most frequent values, the rest pooled as "other"; an item with several
values counts 1/n for each):
- attention ratio = its share of the last query's attention (last layer) / its share of the items in the
  histories the model read: above 1, the model leans on that value more than the histories hold it;
- exposure ratio = its share of the top-k recommendations / its share of the training interactions.
Both with a bootstrap CI over users (percentile, `bootstrap` resamples), and flagged when the whole CI lies
outside `band` (by default 0.8 to 1.25, the four-fifths rule of disparate-impact audits).

The remediation is calibrated re-ranking (Steck, RecSys 2018): the top-k is chosen greedily from the
`candidates` best-scored items to maximise (1 - lam) x relevance + lam x calibration, where calibration is
minus the KL divergence from the interaction shares to the list's value shares. lam = 0 is the model's own
ranking; the audit's `trade_off` measures accuracy against the exposure gap for several lam. Each list is
calibrated on its own: with fewer slots (k) than values, every list favours the frequent values and the
gap over all lists can widen (on the synthetic test log, 8 genres, k = 5: 0.20 -> 0.26 at lam = 0.9; k = 10
narrows it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.special import rel_entr

from seqlens.data.items import ItemTable
from seqlens.data.sequences import Sequences
from seqlens.errors import DataError
from seqlens.eval.protocol import scored_batches
from seqlens.monitor.replay import Requests, answer
from seqlens.monitor.windows import attribute_values, pooling_matrix
from seqlens.recommenders import Recommender

BAND = (0.8, 1.25)
BOOTSTRAP = 500
CANDIDATES = 100
#: Steck's smoothing of the list's shares towards the target, so that the KL stays finite
SMOOTHING = 0.01


def value_pooling(model: Recommender, table: ItemTable, column: str) -> tuple[list[str], np.ndarray]:
    """(value names, pooling [n_items + 1, values]): row j spreads item j evenly over its values."""
    names, slots = attribute_values(model, table, column)
    pooling = pooling_matrix(slots, len(names))
    pooling[0] = 0.0  # padding
    return names, pooling


def interaction_shares(model: Recommender, pooling: np.ndarray) -> np.ndarray:
    """Each value's share of the training interactions (the model's stored histories)."""
    counts = model.history_counts() @ pooling
    return counts / counts.sum()


def audit(
    model: Recommender,
    histories: Sequences,
    table: ItemTable,
    column: str,
    k: int = 10,
    band: tuple[float, float] = BAND,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per attribute value: history, attention, interaction and exposure shares, the two ratios with
    their 95% CIs, and whether each is flagged (see the module docstring)."""
    if len(histories) == 0 or (histories.lengths == 0).any():
        raise DataError("the audit needs at least one user, each with a history the model knows")
    names, pooling = value_pooling(model, table, column)
    requests = Requests.of(histories, np.arange(len(histories)))
    answers = answer(model, requests, k=k)
    n = len(histories)
    attention, held = np.zeros((n, len(names))), np.zeros((n, len(names)))
    per_position = 1.0 / answers.records["length"].to_numpy()[answers.attended_row]
    np.add.at(attention, answers.attended_row, answers.attended_mass[:, None] * pooling[answers.attended_items])
    np.add.at(held, answers.attended_row, per_position[:, None] * pooling[answers.attended_items])
    exposure = pooling[answers.recommended].mean(1)  # [users, values]
    interactions = interaction_shares(model, pooling)
    occurs = (held.sum(0) > 0) | (interactions > 0)  # e.g. no "other" when the attribute has few values
    names = [v for v, keep in zip(names, occurs) if keep]
    attention, held, exposure, interactions = (
        attention[:, occurs],
        held[:, occurs],
        exposure[:, occurs],
        interactions[occurs],
    )
    weights = np.random.default_rng(seed).poisson(1.0, (bootstrap, n)).astype(np.float64)  # Poisson bootstrap
    att_ratio = _ratio(weights @ attention, weights @ held)  # [bootstrap, values]
    exp_ratio = _ratio((weights @ exposure) / weights.sum(1, keepdims=True), interactions)
    frame = pd.DataFrame({
        "value": names, "history_share": held.mean(0), "attention_share": attention.mean(0),
        "attention_ratio": _ratio(attention.mean(0), held.mean(0)),
        "interaction_share": interactions, "exposure_share": exposure.mean(0),
        "exposure_ratio": _ratio(exposure.mean(0), interactions),
    })  # fmt: skip
    for name, draws in (("attention_ratio", att_ratio), ("exposure_ratio", exp_ratio)):
        frame[f"{name}_low"], frame[f"{name}_high"] = np.percentile(draws, [2.5, 97.5], axis=0)
        frame[f"{name}_flagged"] = (frame[f"{name}_low"] > band[1]) | (frame[f"{name}_high"] < band[0])
    return frame


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, undefined (NaN) where the value never occurs (den = 0)."""
    return np.divide(
        num,
        den,
        out=np.full(np.broadcast(num, den).shape, np.nan),
        where=np.broadcast_to(den, np.broadcast(num, den).shape) > 0,
    )


def calibrated_top_k(
    scores: torch.Tensor, pooling: np.ndarray, target: np.ndarray, k: int, lam: float, candidates: int = CANDIDATES
) -> np.ndarray:
    """[N, k] items chosen greedily from each row's `candidates` best scores [N, n_items + 1] (excluded items
    at -inf) to maximise (1 - lam) x mean min-max relevance - lam x KL(target || the list's value shares)."""
    if not 0.0 <= lam <= 1.0:
        raise DataError(f"lam={lam} must lie in [0, 1] (0 = the model's ranking)")
    best_scores, best_items = scores.topk(min(candidates, scores.shape[1]), dim=1)  # [N, C]
    top, idx = best_scores.numpy(), best_items.numpy()
    finite = np.isfinite(top)
    low = np.where(finite, top, np.inf).min(1, keepdims=True)
    # [N, C] in [0, 1]; excluded candidates (-inf) are masked below, never chosen
    relevance = np.where(finite, (top - low) / np.maximum(top[:, :1] - low, 1e-12), 0.0)
    shares = pooling[idx]  # [N, C, values]
    chosen = np.zeros((len(idx), k), dtype=np.int64)
    taken = np.zeros(idx.shape, dtype=bool)
    total_relevance, total_shares = np.zeros((len(idx), 1)), np.zeros((len(idx), 1, pooling.shape[1]))
    q = target / target.sum()
    for step in range(k):
        mix = (total_shares + shares) / (step + 1)  # [N, C, values]: the list's shares with each candidate added
        smoothed = (1 - SMOOTHING) * mix + SMOOTHING * q
        kl = rel_entr(q, smoothed).sum(-1) if lam > 0 else 0.0  # [N, C]: KL(q || list), 0 log 0 = 0
        gain = (1 - lam) * (total_relevance + relevance) / (step + 1) - lam * kl
        gain = np.where(taken | ~finite, -np.inf, gain)
        best = gain.argmax(1)
        rows = np.arange(len(idx))
        chosen[:, step] = np.where(np.isfinite(gain[rows, best]), idx[rows, best], 0)
        taken[rows, best] = True
        total_relevance += relevance[rows, best][:, None]
        total_shares += shares[rows, best][:, None]
    return chosen


def trade_off(
    model: Recommender,
    histories: Sequences,
    targets: np.ndarray,
    table: ItemTable,
    column: str,
    lams: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75),
    k: int = 10,
) -> pd.DataFrame:
    """Per lam: recall@k and NDCG@k of the held-out `targets` (internal indices, one per history) and the
    exposure gap (total variation distance between the lists' value shares and the interaction shares)."""
    _, pooling = value_pooling(model, table, column)
    interactions = interaction_shares(model, pooling)
    rows = []
    for lam in lams:
        lists = np.concatenate(
            [calibrated_top_k(scores, pooling, interactions, k, lam) for _, scores in scored_batches(model, histories, True, 1024)]
        )  # fmt: skip
        hit = lists == targets[:, None]
        rank = hit.argmax(1)
        found = hit.any(1)
        exposure = pooling[lists].mean(1).mean(0)
        rows.append({
            "lam": lam, f"recall@{k}": found.mean(), f"ndcg@{k}": np.where(found, 1 / np.log2(rank + 2), 0.0).mean(),
            "exposure_gap": 0.5 * np.abs(exposure - interactions).sum(),
            "per_user_hit": found,
        })  # fmt: skip
    return pd.DataFrame(rows)
