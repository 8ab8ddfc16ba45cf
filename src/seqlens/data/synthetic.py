"""A synthetic interaction log with planted structure, so accuracy can be checked against known rules.

Each user has a taste over item genres. The next item is drawn, in order of precedence, from:
- a long-range trigger rule: a trigger item seen 10 to 40 steps earlier makes its paired item due now;
- a first-order transition: each item has a few typical successors;
- the user's taste: a popular item from a preferred genre (popularity is Zipf-like);
- noise: any item uniformly.
A sequential model can learn all four; a popularity model only the last two.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqlens.data.log import ITEM, TIME, USER, InteractionLog


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
    if n_items < 2 * n_triggers + n_genres:
        raise ValueError(f"n_items={n_items} is too small for {n_triggers} trigger pairs and {n_genres} genres")
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, n_genres, n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(n_items)]
    successors = rng.integers(0, n_items, (n_items, 3))
    by_genre = [np.flatnonzero(genre == g) for g in range(n_genres)]
    genre_weights = [popularity[idx] / popularity[idx].sum() for idx in by_genre]
    trigger_items = rng.choice(n_items, 2 * n_triggers, replace=False)
    follower_of = dict(zip(trigger_items[:n_triggers], trigger_items[n_triggers:]))

    users, items, times = [], [], []
    for u in range(n_users):
        taste = rng.dirichlet(np.full(n_genres, 0.3))
        length = max(5, int(rng.poisson(mean_length)))
        seq: list[int] = []
        due: dict[int, int] = {}  # step -> item planted by a trigger
        for step in range(length):
            if step in due:
                item = due.pop(step)
            elif seq and rng.random() < p_transition:
                item = int(rng.choice(successors[seq[-1]]))
            elif rng.random() < p_noise:
                item = int(rng.integers(n_items))
            else:
                g = rng.choice(n_genres, p=taste)
                item = int(rng.choice(by_genre[g], p=genre_weights[g]))
            if item in follower_of:
                gap = int(rng.integers(10, 41))
                due.setdefault(step + gap, int(follower_of[item]))
            seq.append(item)
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
    return InteractionLog.from_frame(df, titles, f"synthetic(seed={seed})")
