"""Write a comparison (from `compare`) as Markdown, JSON and a PNG of the differences with their CIs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from seqlens import atomic
from seqlens.eval.significance import format_p


def pyplot():
    """pyplot on the file-only Agg backend (no display needed), imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards, so that long runs do not pile up open figures)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    pyplot().close(fig)
    return buf.getvalue()


def comparison_markdown(table: pd.DataFrame, title: str, protocol: str) -> str:
    reference = table.loc[table["verdict"] == "reference", "model"].iloc[0]
    level = "95%"
    lines = [
        f"# {title}",
        "",
        f"Protocol: {protocol}. Differences are to **{reference}**, paired per user, with a {level} paired "
        "bootstrap interval and a two-sided sign-flip test p-value. Verdict rule: better or worse when the p-value, "
        f"Holm-adjusted over all {int((table['verdict'] != 'reference').sum())} tests of this report (`p Holm`), "
        "is below 0.05.",
        "",
    ]
    for metric, group in table.groupby("metric", sort=False):
        lines += [
            f"## {metric}",
            "",
            "| model | mean | seeds (std) | diff | 95% CI | p | p Holm | users | verdict |",
            "|---|---:|---:|---:|---|---:|---:|---:|---|",
        ]
        for r in group.itertuples():
            seeds = f"{r.seeds} ({r.seed_std:.4f})" if r.seeds > 1 else "1"
            ci = "" if r.verdict == "reference" else f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
            diff = "" if r.verdict == "reference" else f"{r.diff:+.4f}"
            p = "" if r.verdict == "reference" else format_p(r.p_value)
            p_holm = "" if r.verdict == "reference" else format_p(r.p_holm)
            lines.append(
                f"| {r.model} | {r.mean:.4f} | {seeds} | {diff} | {ci} | {p} | {p_holm} | {r.n_users} | {r.verdict} |"
            )
        lines.append("")
    return "\n".join(lines)


def comparison_png(table: pd.DataFrame, metric: str) -> bytes:
    """Horizontal error bars: each model's difference to the reference on `metric`, with its CI."""
    rows = table[(table["metric"] == metric) & (table["verdict"] != "reference")]
    reference = table.loc[table["verdict"] == "reference", "model"].iloc[0]
    fig, ax = pyplot().subplots(figsize=(6, 0.5 * len(rows) + 1.5))
    y = range(len(rows))
    ax.errorbar(
        rows["diff"], y, xerr=[rows["diff"] - rows["ci_low"], rows["ci_high"] - rows["diff"]], fmt="o", capsize=4
    )
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(list(y), rows["model"])
    ax.set_xlabel(f"{metric} difference to {reference} (95% CI)")
    return figure_png(fig)


def frame_markdown(frame: pd.DataFrame, title: str) -> str:
    """A small DataFrame (index = row labels) as a Markdown section; floats to 4 decimals."""
    cols = list(frame.columns)
    lines = [f"## {title}", "", "| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]

    def cell(v) -> str:
        if isinstance(v, float):
            return "-" if np.isnan(v) else f"{v:.4f}"
        return str(v)

    for label, *values in frame.astype(object).itertuples():
        lines.append(f"| {label} | " + " | ".join(map(cell, values)) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(
    table: pd.DataFrame, out: str | Path, title: str, protocol: str, extra: dict[str, pd.DataFrame] | None = None
) -> Path:
    """Write compare.md, compare.json and compare.png (first metric) into directory `out`, atomically.

    `extra` adds titled tables (beyond-accuracy measures, breakdowns) to the Markdown and the JSON.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    markdown = "\n".join(
        [comparison_markdown(table, title, protocol), *(frame_markdown(f, t) for t, f in extra.items())]
    )
    atomic.write_text(out / "compare.md", markdown)
    payload = {
        "protocol": protocol,
        "rows": table.to_dict("records"),
        **{t: f.reset_index().to_dict("records") for t, f in extra.items()},
    }
    atomic.write_text(out / "compare.json", json.dumps(payload, indent=1, default=str))
    atomic.write_bytes(out / "compare.png", comparison_png(table, table["metric"].iloc[0]))
    return out


def reliability_png(curves: dict[str, list[dict]], title: str) -> bytes:
    """Reliability diagram: accuracy against confidence per bin, one line per curve, diagonal = calibrated."""
    fig, ax = pyplot().subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    for label, table in curves.items():
        conf, acc = [r["confidence"] for r in table], [r["accuracy"] for r in table]
        (line,) = ax.plot(conf, acc, lw=1, label=label)
        # marker area by the bin's share of users: bins holding a handful of users are visibly small
        users = np.array([r["users"] for r in table], dtype=float)
        ax.scatter(conf, acc, s=8 + 300 * users / users.sum(), color=line.get_color(), alpha=0.8)
    ax.set(xlabel="top-1 probability (bin mean; marker area = users)", ylabel="top-1 accuracy",
           xlim=(0, 1), ylim=(0, 1), title=title)  # fmt: skip
    ax.legend()
    return figure_png(fig)
