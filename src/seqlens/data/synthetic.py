"""A synthetic interaction log with planted structure, so accuracy and explanations can be checked against known rules.

Each user has a taste over item genres. The next item is drawn, in order of precedence, from:
- a planted rule whose item is due now (below);
- a first-order transition: each item has a few typical successors;
- the user's taste: a popular item from a preferred genre (popularity is Zipf-like);
- noise: any item uniformly.
Rules (their ground truth is recorded by `planted_log`):
- long-range trigger: a trigger item A seen 10 to 40 steps earlier makes its paired item B due now (in the
  test bed each pair has its own fixed gap, so the timing is learnable from positions);
- second-order: C follows B only when A occurred, in order, anywhere before B (B alone predicts nothing).
Planted items are half long-range triggers, half second-order A or B items.
`synthetic_log` keeps the original generator (the demo's data); `planted_log` is the test bed, which also
plants rule items on purpose (`p_plant`) and ends half the sequences on a rule-governed item, so that the
test target (the last item) is rule-governed for many users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqlens.data.log import ITEM, TIME, USER, InteractionLog

LONG_RANGE, SECOND_ORDER = "long_range", "second_order"


@dataclass
class PlantedLog:
    """The log and, for every rule-governed interaction, where its trigger(s) are.

    `truth` columns: user_id, position (0-based index of the governed item in the user's sequence, oldest
    first), item_id, rule ("long_range" | "second_order"), triggers (positions of the trigger items: [A] for
    long-range, [A, B] for second-order, B being the item just before), is_last (the user's last item).
    """

    log: InteractionLog
    truth: pd.DataFrame


def synthetic_log(
    n_users: int = 2000,
    n_items: int = 400,
    n_genres: int = 8,
    mean_length: int = 30,
    p_transition: float = 0.45,
    p_noise: float = 0.05,
    n_triggers: int = 20,
    seed: int = 0,
) -> InteractionLog:
    """Generate a reproducible log (same seed, same log) with item titles like 'Item 17 (genre C)'."""
    return planted_log(
        n_users, n_items, n_genres, mean_length, p_transition, p_noise, n_triggers,
        n_second_order=0, p_plant=0.0, end_on_rule=0.0, fixed_gaps=False, seed=seed,
    ).log  # fmt: skip


def planted_log(
    n_users: int = 4000,
    n_items: int = 400,
    n_genres: int = 8,
    mean_length: int = 40,
    p_transition: float = 0.3,
    p_noise: float = 0.1,
    n_triggers: int = 4,
    n_second_order: int = 2,
    p_plant: float = 0.15,
    end_on_rule: float = 0.5,
    fixed_gaps: bool = True,
    seed: int = 0,
) -> PlantedLog:
    """The test bed: a reproducible log plus the position of the true trigger(s) of each rule-governed item.

    The defaults give each long-range rule about 1,000 training examples. With 20 rules over 2,000 users
    (about 110 each) a 2-layer SASRec put the due item in its top 10 for 5% of long-range targets after 40
    epochs, which left the test bed's long-range half nothing to measure; with these defaults, about half.
    """
    if n_items < 2 * n_triggers + 3 * n_second_order + n_genres:
        raise ValueError(
            f"n_items={n_items} is too small for {n_triggers} trigger pairs, {n_second_order} second-order "
            f"rules and {n_genres} genres"
        )
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, n_genres, n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(n_items)]
    successors = rng.integers(0, n_items, (n_items, 3))
    by_genre = [np.flatnonzero(genre == g) for g in range(n_genres)]
    genre_weights = [popularity[idx] / popularity[idx].sum() for idx in by_genre]
    rule_items = rng.choice(n_items, 2 * n_triggers + 3 * n_second_order, replace=False)
    follower_of = dict(zip(rule_items[:n_triggers], rule_items[n_triggers : 2 * n_triggers]))
    gap_of = dict(zip(rule_items[:n_triggers], rng.integers(10, 41, n_triggers))) if fixed_gaps else None
    a_items, b_items, c_items = rule_items[2 * n_triggers :].reshape(3, n_second_order) if n_second_order else ([],) * 3
    second_of_b = {int(b): (int(a), int(c)) for a, b, c in zip(a_items, b_items, c_items)}
    plantable = [rule_items[:n_triggers].astype(int), np.concatenate([a_items, b_items]).astype(int)]

    users, items, times, truth = [], [], [], []
    for u in range(n_users):
        taste = rng.dirichlet(np.full(n_genres, 0.3))
        length = max(5, int(rng.poisson(mean_length)))
        seq: list[int] = []
        last_seen: dict[int, int] = {}  # item -> its latest position
        due: dict[int, tuple[int, str, list[int]]] = {}  # step -> (item, rule, trigger positions)
        governed: list[tuple[int, int, str, list[int]]] = []
        for step in range(length):
            if step in due:
                item, rule, triggers = due.pop(step)
                governed.append((step, item, rule, triggers))
            elif p_plant and rng.random() < p_plant:
                item = int(rng.choice(plantable[int(n_second_order > 0 and rng.random() < 0.5)]))
            elif seq and rng.random() < p_transition:
                item = int(rng.choice(successors[seq[-1]]))
            elif rng.random() < p_noise:
                item = int(rng.integers(n_items))
            else:
                g = rng.choice(n_genres, p=taste)
                item = int(rng.choice(by_genre[g], p=genre_weights[g]))
            if item in follower_of:
                gap = int(gap_of[item] if gap_of else rng.integers(10, 41))
                due.setdefault(step + gap, (int(follower_of[item]), LONG_RANGE, [step]))
            if item in second_of_b and second_of_b[item][0] in last_seen:
                a, c = second_of_b[item]
                due.setdefault(step + 1, (c, SECOND_ORDER, [last_seen[a], step]))
            last_seen[item] = step
            seq.append(item)
        if end_on_rule and governed and rng.random() < end_on_rule:
            rule = rng.choice(sorted({g[2] for g in governed}))  # each rule present is equally likely to end
            ends = [g[0] for g in governed if g[0] >= 2 and g[2] == rule]
            if ends:
                length = ends[-1] + 1
                seq = seq[:length]
        truth += [(f"u{u}", s, f"i{i}", rule, trig, s == length - 1) for s, i, rule, trig in governed if s < length]
        start = 1_600_000_000 + int(rng.integers(0, 10_000_000))
        users += [f"u{u}"] * length
        items += seq
        times += list(start + np.cumsum(rng.integers(60, 86_400, length)))
    df = pd.DataFrame({USER: users, ITEM: [f"i{i}" for i in items], TIME: np.array(times, dtype=np.int64)})
    titles = pd.DataFrame(
        {
            ITEM: [f"i{i}" for i in range(n_items)],
            "title": [f"Item {i} (genre {chr(65 + g)})" for i, g in enumerate(genre)],
            "genre": [chr(65 + g) for g in genre],
        }
    )
    name = f"synthetic(seed={seed})" if not (n_second_order or p_plant) else f"planted(seed={seed})"
    truth_frame = pd.DataFrame(truth, columns=[USER, "position", ITEM, "rule", "triggers", "is_last"])
    return PlantedLog(InteractionLog.from_frame(df, titles, name), truth_frame)
