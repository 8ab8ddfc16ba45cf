"""The AWRSR study's learning speed and attention pictures: does refinement learn faster, and where does it look?

The paper claims refinement brings "faster learning and better gradient convergence". From the study's saved
runs (benchmarks/results/awrsr/<dataset>/<variant>-seed<k>.json, written by `python -m benchmarks.awrsr_study`:
a validation NDCG@10 per epoch and, for runs trained since the trainer records it, the mean gradient norm per
epoch), each refined run is paired with the unrefined run of its seed: the epochs it takes to reach 90% of
that SASRec run's best validation NDCG@10, the validation NDCG@10 at fixed epochs, the epoch of its best, and
its gradient norm (round 2: round 1's settings re-run with the current code, which records it). On the planted
test bed, heatmaps of the raw and the applied attention of round 2's seed-0 models (runs/awrsr/round2/synthetic)
for one long-range and one second-order case.

Usage: python -m benchmarks.awrsr_convergence     (writes docs/awrsr-convergence.md and its figures, in seconds)
"""

from __future__ import annotations

import numpy as np

from benchmarks.awrsr_study import DOC, IMG, VARIANTS, load_results, models_dir
from seqlens import atomic

PAGE = DOC.with_name("awrsr-convergence.md")
#: a run "has learned" once its validation NDCG@10 reaches this share of the same seed's SASRec best
REACH = 0.9
#: the epochs at which validation NDCG@10 is compared
AT_EPOCHS = (5, 10, 20)
#: positions shown in a heatmap (the most recent ones, where the test bed's triggers lie)
WINDOW = 24


def reached(history: list[dict], threshold: float) -> int | None:
    """The first epoch whose validation NDCG@10 is at least `threshold`, None if none is."""
    return next((r["epoch"] for r in history if r["ndcg@10"] >= threshold), None)


def pair_speed(run: dict, base: dict) -> dict:
    """Learning speed of `run` against `base`, the unrefined run of the same dataset and seed."""
    threshold = REACH * max(r["ndcg@10"] for r in base["history"])
    ndcg = {r["epoch"]: r["ndcg@10"] for r in run["history"]}
    base_ndcg = {r["epoch"]: r["ndcg@10"] for r in base["history"]}
    out = {
        "seed": run["seed"], "reach": reached(run["history"], threshold), "base_reach": reached(base["history"], threshold),
        "best": run["best_epoch"], "base_best": base["best_epoch"], "cap": run["params"]["epochs"],
        "at": {e: ndcg[e] - base_ndcg[e] for e in AT_EPOCHS if e in ndcg and e in base_ndcg},
    }  # fmt: skip
    if all("grad_norm" in r for r in run["history"] + base["history"]):
        common = min(len(run["history"]), len(base["history"]))
        out["grad_ratio"] = float(
            np.mean([r["grad_norm"] for r in run["history"][:common]])
            / np.mean([r["grad_norm"] for r in base["history"][:common]])
        )
    return out


def order(pairs: list[dict]) -> list[int]:
    """Per pair, -1 / 0 / 1: the refined run reached the threshold earlier than / with / later than its SASRec (a run
    that never reached it counts as reaching it after the cap)."""
    big = max(p["cap"] for p in pairs) + 1
    return [int(np.sign((p["reach"] or big) - (p["base_reach"] or big))) for p in pairs]


def _epochs(value: int | None, cap: int) -> str:
    return f">{cap}" if value is None else str(value)


def speed_section(dataset: str, runs: list[dict], name: str) -> tuple[list[str], list[dict]]:
    """The paired learning-speed table of one dataset (its figure: img/awrsr_<name>_speed.png), and its pairs."""
    base = {r["seed"]: r for r in runs if r["variant"] == "none"}
    lines = [
        "",
        f"Each refined run against SASRec of the same seed. *Reach*: the first epoch whose validation NDCG@10 is "
        f"at least {REACH:.0%} of that SASRec run's best (model / SASRec, per seed). *Best*: the epoch of the best "
        f"validation NDCG@10; at the epoch cap ({runs[0]['params']['epochs']}) a run was still improving, so its "
        "epochs to best are a lower bound. *Gradient norm*: the mean over the epochs both ran of the per-epoch mean "
        "L2 norm of the whole gradient, as a ratio to SASRec's (runs trained before the trainer recorded it: -).",
        "",
        "| model | seeds | reach, per seed | reached earlier / same / later | "
        + " | ".join(f"Δ valid NDCG@10 at epoch {e} (mean)" for e in AT_EPOCHS)
        + " | best, per seed | gradient norm vs SASRec |",
        "|---|---:|---|---|" + "---:|" * len(AT_EPOCHS) + "---|---:|",
    ]  # fmt: skip
    pairs = []
    for v in VARIANTS[1:]:
        found = [pair_speed(r, base[r["seed"]]) for r in sorted(runs, key=lambda r: r["seed"])
                 if r["variant"] == v and r["seed"] in base]  # fmt: skip
        if not found:
            continue
        for p in found:
            pairs.append({**p, "variant": v})
        signs = order(found)
        at = [np.mean([p["at"][e] for p in found if e in p["at"]]) if any(e in p["at"] for p in found) else None
              for e in AT_EPOCHS]  # fmt: skip
        grads = [p["grad_ratio"] for p in found if "grad_ratio" in p]
        lines.append(
            f"| AWRSR-{v} | {len(found)} | "
            + ", ".join(f"{_epochs(p['reach'], p['cap'])} / {_epochs(p['base_reach'], p['cap'])}" for p in found)
            + f" | {signs.count(-1)} / {signs.count(0)} / {signs.count(1)} | "
            + " | ".join("-" if a is None else f"{a:+.4f}" for a in at)
            + " | " + ", ".join(f"{p['best']} / {p['base_best']}" for p in found)
            + (f" | {np.mean(grads):.2f}x ({len(grads)} seed{'s' * (len(grads) > 1)}) |" if grads else " | - |")
        )  # fmt: skip
    return lines + ["", f"![validation NDCG@10 and gradient norm per epoch](img/awrsr_{name}_speed.png)", ""], pairs


def curves_png(dataset: str, runs: list[dict]) -> bytes:
    """Validation NDCG@10 (and gradient norm, where recorded) per epoch, each variant's mean over its seeds up to
    the shortest of its runs (so that no mean is over the seeds that happened to train longest)."""
    from seqlens.eval.report import figure_png, pyplot

    with_grad = all("grad_norm" in r for run in runs for r in run["history"])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if with_grad else 1, figsize=(11 if with_grad else 6.4, 3.6), squeeze=False)
    for v in VARIANTS:
        histories = [r["history"] for r in runs if r["variant"] == v]
        if not histories:
            continue
        n = min(map(len, histories))
        label = "SASRec" if v == "none" else f"AWRSR-{v}"
        epochs = np.arange(1, n + 1)
        axes[0, 0].plot(epochs, np.mean([[r["ndcg@10"] for r in h[:n]] for h in histories], 0), label=label)
        if with_grad:
            axes[0, 1].plot(epochs, np.mean([[r["grad_norm"] for r in h[:n]] for h in histories], 0), label=label)
    axes[0, 0].set(xlabel="epoch", ylabel="validation NDCG@10", title=f"{dataset}: mean over seeds")
    axes[0, 0].legend()
    if with_grad:
        axes[0, 1].set(xlabel="epoch", ylabel="mean gradient norm", title=f"{dataset}: gradient norm", yscale="log")
    return figure_png(fig)


def verdict(dataset: str, pairs: list[dict]) -> str:
    """Counted over every refined run paired with its seed's SASRec: does refinement learn faster?"""
    signs = order(pairs)
    at10 = [p["at"][10] for p in pairs if 10 in p["at"]]
    # refined runs, then SASRec runs (one per seed), whose best epoch was the last one allowed
    capped = sum(p["best"] >= p["cap"] for p in pairs) + len({p["seed"] for p in pairs if p["base_best"] >= p["cap"]})
    grads = [p["grad_ratio"] for p in pairs if "grad_ratio" in p]
    line = (
        f"- {dataset}: of {len(pairs)} refined runs, {signs.count(-1)} reached {REACH:.0%} of their seed's SASRec best "
        f"earlier, {signs.count(0)} at the same epoch, {signs.count(1)} later; validation NDCG@10 at epoch 10 was "
        f"higher in {sum(a > 0 for a in at10)} of {len(at10)} (mean {np.mean(at10):+.4f})."
    )
    if capped:
        line += f" {capped} run(s) had their best epoch at the cap, so their epochs to best are censored."
    if grads:
        line += f" Gradient norm against SASRec: {min(grads):.2f}x to {max(grads):.2f}x over {len(grads)} runs."
    return line


def overall(pairs: list[dict], label: str) -> str:
    """All datasets together: earlier against later, ties dropped, with a two-sided sign test."""
    from scipy.stats import binomtest

    signs = order(pairs)
    earlier, later = signs.count(-1), signs.count(1)
    p = binomtest(earlier, earlier + later).pvalue if earlier + later else 1.0
    if p < 0.05:
        said = f"refinement learns {'faster' if earlier > later else 'slower'} by this measure, detectably"
    else:
        said = "no detectable difference in learning speed"
    return (
        f"- {label}: {earlier} refined runs reached {REACH:.0%} of SASRec's best earlier, {later} later, "
        f"{signs.count(0)} at the same epoch (two-sided sign test, ties dropped: p={p:.2f}; the variants of a seed share "
        f"its SASRec run, so the pairs are not independent and p is optimistic): {said}."
    )


def heatmaps_png(rule: str) -> bytes | None:
    """Raw and applied attention of round 2's seed-0 models on the test bed, for the first test user (by id) whose
    last item is governed by `rule` and whose trigger(s) lie in the last `WINDOW` positions; None without models."""
    import torch

    import seqlens
    from seqlens.eval.protocol import targets_with_histories
    from seqlens.eval.report import figure_png, pyplot

    paths = {v: models_dir(2) / "synthetic" / f"{v}-seed0" for v in VARIANTS}
    if not all(p.exists() for p in paths.values()):
        return None
    planted = seqlens.planted_log()  # the study's test bed (awrsr_study trains on its defaults)
    split = seqlens.leave_one_out(planted.log)
    truth = planted.truth[planted.truth["is_last"] & (planted.truth["rule"] == rule)].set_index("user_id")
    models = {v: seqlens.load(p) for v, p in paths.items()}
    users, hist, _ = targets_with_histories(models["none"], split.test, split.test_history)
    for row in np.argsort(users.astype(str)):
        length = int(hist.lengths[row])
        if users[row] in truth.index and length >= WINDOW and min(truth.loc[users[row], "triggers"]) >= length - WINDOW:
            break
    else:
        return None
    user = users[row]
    triggers = [p - (length - WINDOW) for p in truth.loc[user, "triggers"]]  # columns within the window
    plt = pyplot()
    layers = models["none"].layers
    fig, axes = plt.subplots(len(VARIANTS), 2 * layers, figsize=(3 * 2 * layers, 3 * len(VARIANTS)), squeeze=False)
    for i, (v, model) in enumerate(models.items()):
        seq = torch.from_numpy(hist.padded(np.array([row]), model.max_len))
        with torch.inference_mode():
            _, attentions = model.net_(seq, return_attention=True)
        for layer, weights in enumerate(attentions):
            for j, kind in enumerate(("raw", "applied")):
                ax = axes[i, 2 * layer + j]
                ax.imshow(getattr(weights, kind)[0].mean(0)[-WINDOW:, -WINDOW:].numpy(), cmap="viridis", vmin=0)
                for t in triggers:
                    ax.axvline(t, color="red", linewidth=0.8, alpha=0.7)
                ax.set_title(f"{'SASRec' if v == 'none' else 'AWRSR-' + v}: layer {layer + 1} {kind}", fontsize=8)
                ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"test bed, {rule} rule, user {user}: query rows, key columns, last {WINDOW} positions (each panel "
                 "scaled to its own largest weight); red: the trigger(s)", fontsize=9)  # fmt: skip
    return figure_png(fig)


#: the rounds of the study this page reads: the first (awrsr.md), and the second (its runs re-run with the current
#: code, which records gradient norms; `python -m benchmarks.awrsr_study synthetic --round 2`)
ROUNDS = {1: "Round 1 (the runs of awrsr.md)",
          2: "Round 2 (round 1's settings re-run with the current code, which records gradient norms)"}  # fmt: skip


def main() -> None:
    lines = [
        "# AWRSR: learning speed and where refinement looks",
        "",
        "Generated by `python -m benchmarks.awrsr_convergence` from the runs of `python -m benchmarks.awrsr_study` "
        "(see awrsr.md for their settings and accuracy). The paper claims refinement brings faster learning and "
        "better gradient convergence; each refined run is compared with the SASRec run of the same seed. Round 2 "
        "re-runs round 1's settings with today's code: plain SASRec gives round 1's numbers exactly, while the refined "
        "variants differ, because their projections W1 and W2 are now drawn at another point of the random stream "
        "(the same N(0, 1), other initial values).",
        "",
        "## Verdict",
        "",
    ]
    sections, verdicts = [], []
    IMG.mkdir(parents=True, exist_ok=True)
    for round_, title in ROUNDS.items():
        results, _ = load_results(round_)
        every = []
        for dataset, runs in results.items():
            name = dataset if round_ == 1 else f"round{round_}_{dataset}"
            section, pairs = speed_section(dataset, runs, name)
            atomic.write_bytes(IMG / f"awrsr_{name}_speed.png", curves_png(dataset, runs))
            sections += [f"## {title}: {dataset}", *section]
            if pairs:
                verdicts.append(verdict(f"{dataset} (round {round_})", pairs))
                every += pairs
        if every:
            verdicts.append(overall(every, f"Round {round_}, all datasets"))
    pictures = ["## Raw vs refined attention on the planted test bed", ""]
    for rule in ("long_range", "second_order"):
        png = heatmaps_png(rule)
        if png is None:
            pictures.append(f"- {rule}: no seed-0 models of every variant in runs/awrsr/round2/synthetic; train them "
                            "with `python -m benchmarks.awrsr_study synthetic --seeds 1 --round 2`.")  # fmt: skip
            continue
        atomic.write_bytes(IMG / f"awrsr_heatmap_{rule}.png", png)
        pictures += [f"![{rule}: raw and applied attention per layer](img/awrsr_heatmap_{rule}.png)", ""]
    atomic.write_text(PAGE, "\n".join(lines + verdicts + [""] + sections + pictures) + "\n")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
