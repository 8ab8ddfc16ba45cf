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


@dataclass
class _World:
    """The background process every generator shares: genres, Zipf-like popularity, typical successors."""

    genre: np.ndarray
    successors: np.ndarray
    by_genre: list[np.ndarray]
    genre_weights: list[np.ndarray]
    p_transition: float
    p_noise: float

    @classmethod
    def draw(cls, rng: np.random.Generator, n_items: int, n_genres: int, p_transition: float, p_noise: float) -> _World:
        genre = rng.integers(0, n_genres, n_items)
        popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
        popularity = popularity[rng.permutation(n_items)]
        successors = rng.integers(0, n_items, (n_items, 3))
        by_genre = [np.flatnonzero(genre == g) for g in range(n_genres)]
        weights = [popularity[idx] / popularity[idx].sum() for idx in by_genre]
        return cls(genre, successors, by_genre, weights, p_transition, p_noise)

    def taste(self, rng: np.random.Generator) -> np.ndarray:
        """A user's preference over genres (concentrated on a few)."""
        return rng.dirichlet(np.full(len(self.by_genre), 0.3))

    def next_item(self, rng: np.random.Generator, seq: list[int], taste: np.ndarray) -> int:
        """A rule-free next item: a typical successor of the last one, noise, or a popular item of a liked genre."""
        if seq and rng.random() < self.p_transition:
            return int(rng.choice(self.successors[seq[-1]]))
        if rng.random() < self.p_noise:
            return int(rng.integers(len(self.genre)))
        g = rng.choice(len(self.by_genre), p=taste)
        return int(rng.choice(self.by_genre[g], p=self.genre_weights[g]))

    def log(self, users: list[str], items: list[int], times: list[int], name: str) -> InteractionLog:
        df = pd.DataFrame({USER: users, ITEM: [f"i{i}" for i in items], TIME: np.array(times, dtype=np.int64)})
        titles = pd.DataFrame(
            {
                ITEM: [f"i{i}" for i in range(len(self.genre))],
                "title": [f"Item {i} (genre {chr(65 + g)})" for i, g in enumerate(self.genre)],
                "genre": [chr(65 + g) for g in self.genre],
            }
        )
        return InteractionLog.from_frame(df, titles, name)


def _times(rng: np.random.Generator, length: int) -> list[int]:
    """Increasing timestamps for one user's sequence: a random start, then a minute to a day apart."""
    start = 1_600_000_000 + int(rng.integers(0, 10_000_000))
    return list(start + np.cumsum(rng.integers(60, 86_400, length)))


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
    world = _World.draw(rng, n_items, n_genres, p_transition, p_noise)
    rule_items = rng.choice(n_items, 2 * n_triggers + 3 * n_second_order, replace=False)
    follower_of = dict(zip(rule_items[:n_triggers], rule_items[n_triggers : 2 * n_triggers]))
    gap_of = dict(zip(rule_items[:n_triggers], rng.integers(10, 41, n_triggers))) if fixed_gaps else None
    a_items, b_items, c_items = rule_items[2 * n_triggers :].reshape(3, n_second_order) if n_second_order else ([],) * 3
    second_of_b = {int(b): (int(a), int(c)) for a, b, c in zip(a_items, b_items, c_items)}
    plantable = [rule_items[:n_triggers].astype(int), np.concatenate([a_items, b_items]).astype(int)]

    users, items, times, truth = [], [], [], []
    for u in range(n_users):
        taste = world.taste(rng)
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
            else:
                item = world.next_item(rng, seq, taste)
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
        users += [f"u{u}"] * length
        items += seq
        times += _times(rng, length)
    name = f"synthetic(seed={seed})" if not (n_second_order or p_plant) else f"planted(seed={seed})"
    truth_frame = pd.DataFrame(truth, columns=[USER, "position", ITEM, "rule", "triggers", "is_last"])
    return PlantedLog(world.log(users, items, times, name), truth_frame)


#: the case families of `trigger_families`, by where the triggers are and what surrounds them
FAMILIES = ("recent", "mid", "early", "two_triggers", "distractors")
GAP_RULE, AND_RULE = "gap", "and"


def trigger_families(
    n_users: int = 4000,
    n_items: int = 400,
    n_genres: int = 8,
    mean_length: int = 40,
    p_transition: float = 0.3,
    p_noise: float = 0.1,
    n_gap_rules: int = 6,
    n_and_rules: int = 2,
    max_gap: int = 40,
    p_plant: float = 0.15,
    end_on_rule: float = 0.6,
    seed: int = 0,
) -> PlantedLog:
    """A second test bed, built unlike `planted_log`: triggers at varying distances, pairs of triggers, distractors.

    Rules (the background is `planted_log`'s: taste, typical successors, noise; rule triggers are planted at
    random steps with probability `p_plant`):
    - gap rule: a trigger A makes its item B due a fixed number of steps later, the rule's own gap; the gaps
      of the rules are spread over three ranges, so triggers lie recent (2-7 steps back), mid (8-19) or
      early (20 to `max_gap`);
    - and rule: D becomes due a fixed 2 to 6 steps (per rule) after both of its triggers A1 and A2 have
      occurred (in any order): the model needs both.
    - distractors: triggers of *other* rules that happen, by the same random planting, to sit in the two steps
      just before a due item: recent, meaningful items that play no part in this one (placed independently
      of any due time, they say nothing about it).
    Each governed case gets a family: `two_triggers` (and rule), `distractors` (a distractor in the two steps
    before it), else by the nearest trigger's distance d: `recent` (d < 8), `mid` (8 <= d < 20), `early`
    (d >= 20). `truth` has `planted_log`'s columns plus `family` and `decoys` (positions of the distractors).
    Users ending on a governed item are spread evenly over the families they hold.
    """
    n_rule_items = 2 * n_gap_rules + 3 * n_and_rules
    if n_gap_rules < 3 or n_items < n_rule_items + n_genres or max_gap < 20:
        raise ValueError(
            f"need at least 3 gap rules, max_gap >= 20 and n_items >= {n_rule_items + n_genres}, "
            f"got {n_gap_rules}, {max_gap}, {n_items}"
        )
    rng = np.random.default_rng(seed)
    world = _World.draw(rng, n_items, n_genres, p_transition, p_noise)
    rule_items = rng.choice(n_items, n_rule_items, replace=False).astype(int)
    gap_triggers, gap_items = rule_items[:n_gap_rules], rule_items[n_gap_rules : 2 * n_gap_rules]
    ranges = [(2, 7), (8, 19), (20, max_gap)]  # recent, mid, early: rule r gets a gap in range r mod 3
    gap_of = {int(a): int(rng.integers(ranges[r % 3][0], ranges[r % 3][1] + 1)) for r, a in enumerate(gap_triggers)}
    follower_of = dict(zip(gap_triggers.tolist(), gap_items.tolist()))
    and_rules = [
        (*rule, int(rng.integers(2, 7))) for rule in rule_items[2 * n_gap_rules :].reshape(n_and_rules, 3).tolist()
    ]
    plantable = np.concatenate([gap_triggers, rule_items[2 * n_gap_rules :].reshape(-1, 3)[:, :2].ravel()])
    all_triggers = set(plantable.tolist())

    users, items, times, truth = [], [], [], []
    for u in range(n_users):
        taste = world.taste(rng)
        length = max(8, int(rng.poisson(mean_length)))
        seq: list[int] = []
        last_seen: dict[int, int] = {}
        due: dict[int, tuple[int, str, list[int]]] = {}
        governed: list[tuple[int, int, str, list[int], list[int]]] = []
        for step in range(length):
            if step in due:
                item, rule, fired = due.pop(step)
                # every occurrence of the trigger items since the rule fired counts as a trigger
                wanted = {seq[s] for s in fired}
                triggers = [s for s in range(min(fired), step) if seq[s] in wanted]
                decoys = [s for s in (step - 2, step - 1)
                          if s > max(triggers) and seq[s] in all_triggers and seq[s] not in wanted]  # fmt: skip
                governed.append((step, item, rule, triggers, decoys))
            elif rng.random() < p_plant:
                item = int(rng.choice(plantable))
            else:
                item = world.next_item(rng, seq, taste)
            seq.append(item)
            if item in follower_of:
                at = step + gap_of[item]
                due.setdefault(at, (follower_of[item], GAP_RULE, [step]))
            for a1, a2, d, delay in and_rules:
                other = a2 if item == a1 else a1 if item == a2 else None
                if other is not None and other in last_seen:
                    due.setdefault(step + delay, (d, AND_RULE, sorted([last_seen[other], step])))
            last_seen[item] = step
        cases = [g for g in governed if g[0] >= 2]
        if end_on_rule and cases and rng.random() < end_on_rule:
            families = sorted({_family(g) for g in cases})
            chosen = families[int(rng.integers(len(families)))]
            length = [g[0] for g in cases if _family(g) == chosen][-1] + 1
            seq = seq[:length]
        truth += [
            (f"u{u}", s, f"i{i}", rule, trig, s == length - 1, _family((s, i, rule, trig, dec)), dec)
            for s, i, rule, trig, dec in governed
            if s < length
        ]
        users += [f"u{u}"] * length
        items += seq
        times += _times(rng, length)
    columns = [USER, "position", ITEM, "rule", "triggers", "is_last", "family", "decoys"]
    return PlantedLog(
        world.log(users, items, times, f"trigger families(seed={seed})"), pd.DataFrame(truth, columns=columns)
    )


def _family(case: tuple[int, int, str, list[int], list[int]]) -> str:
    position, _, rule, triggers, decoys = case
    if rule == AND_RULE:
        return "two_triggers"
    if decoys:
        return "distractors"
    distance = position - triggers[-1]  # the nearest occurrence of the trigger
    return "recent" if distance < 8 else "mid" if distance < 20 else "early"
