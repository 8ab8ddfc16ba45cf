"""Pictures of explanations: attention heatmaps per layer and head, attribution bars, faithfulness curves.

Figures are returned as PNG or SVG bytes (matplotlib's file-only Agg backend, no display needed). Axis
labels are item titles, truncated; deny-listed items are labelled `OTHER` like everywhere else.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from seqlens.errors import DataError
from seqlens.eval.report import pyplot
from seqlens.explain.explanation import Explanation
from seqlens.explain.faithfulness import RANDOM, FaithfulnessResult
from seqlens.explain.privacy import OTHER, as_deny_list
from seqlens.nn.masking import time_kwargs

if TYPE_CHECKING:  # annotations only: explain reads fitted models, it does not build them
    from seqlens.recommenders.neural import NextItemModel

FORMATS = ("png", "svg")


def short(title: str | None, width: int = 22) -> str:
    """A title cut to `width` characters with an ellipsis, so axis labels stay readable."""
    title = "?" if title is None else str(title)
    return title if len(title) <= width else title[: width - 1].rstrip() + "\u2026"


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """Serialise and close a figure (PNG at 120 dpi, or SVG)."""
    if fmt not in FORMATS:
        raise DataError(f"format {fmt!r}; choose png or svg")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format=fmt, dpi=120)
    pyplot().close(fig)
    return buf.getvalue()


def attention_heatmaps(
    model: NextItemModel,
    history: Sequence[str],
    last: int = 12,
    which: str = "applied",
    deny=None,
    fmt: str = "png",
    timestamps: Sequence[int] | None = None,
) -> bytes:
    """One heatmap per layer and head of the attention among the `last` most recent positions (`timestamps`: the
    history's, for a model that reads time).

    Rows are queries, columns keys (both oldest first); the bottom row is what the model read to make
    its prediction. `which` = "applied" (what multiplied V; AWRSR's refined weights) or "raw" (softmax
    of Q K^T). Weights to keys older than the shown window are left out, so a row can sum to less than 1.
    """
    if which not in ("applied", "raw"):
        raise DataError(f"which={which!r}; choose applied or raw")
    _, seqs = model.encoded_histories(
        histories={"history": list(history)}, timestamps=None if timestamps is None else {"history": timestamps}
    )
    seq, times = model.padded_inputs(seqs, np.arange(1))
    with torch.inference_mode():
        _, weights = model.net_(seq, return_attention=True, **time_kwargs(times))
    n = min(last, int(seqs.lengths[0]), model.max_len)
    deny = as_deny_list(deny)
    ids = [str(i) for i in model.decode_items(seq[0, -n:].numpy())]
    names = [OTHER if i in deny else short(model.item_titles_.get(i, i)) for i in ids]
    panels = [(layer, head) for layer in range(len(weights)) for head in range(weights[0].applied.shape[1])]
    cols = min(2, len(panels))
    rows = -(-len(panels) // cols)
    size = 0.32 * n + 2.2
    fig, axes = pyplot().subplots(rows, cols, figsize=(size * cols + 0.8, size * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (layer, head) in zip(axes.flat, panels):
        matrix = getattr(weights[layer], which)[0, head, -n:, -n:].numpy()
        image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=max(float(matrix.max()), 1e-9))
        ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
        ax.set_title(f"layer {layer + 1}, head {head + 1} ({which})", fontsize=9)
        ax.set_xlabel("key (attended item)", fontsize=8)
        ax.set_ylabel("query position", fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return figure_bytes(fig, fmt)


def attribution_bars(explanations: Mapping[str, Explanation], top: int = 8, fmt: str = "png") -> bytes:
    """Side-by-side bars per method over the union of each method's `top` positions, oldest at the top.

    Each method's scores are divided by its largest absolute score, so methods on different scales
    (weights, norms, logit drops) share an axis; negative bars (gradient and occlusion) lowered the score.
    """
    if not explanations:
        raise DataError("no explanations to plot")
    first = next(iter(explanations.values()))
    positions = sorted({int(j) for e in explanations.values() for j in np.argsort(-e.scores, kind="stable")[:top]})
    labels = [f"{short(first.titles[j] or first.items[j])} [{j - len(first.items)}]" for j in positions]
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(explanations), figsize=(2.3 * len(explanations) + 2.2, 0.3 * len(positions) + 1.6),
        sharey=True, squeeze=False,
    )  # fmt: skip
    for ax, (method, e) in zip(axes[0], explanations.items()):
        scale = float(np.abs(e.scores).max()) or 1.0
        values = e.scores[positions] / scale
        ax.barh(range(len(positions)), values, color=["tab:blue" if v >= 0 else "tab:red" for v in values])
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(method, fontsize=9)
        ax.set_xlim(min(-0.05, float(values.min()) * 1.1), 1.05)
        ax.tick_params(axis="x", labelsize=7)
    axes[0][0].set_yticks(range(len(positions)), labels, fontsize=7)
    axes[0][0].invert_yaxis()
    fig.suptitle(
        f"attribution of {short(first.recommended_title or first.recommended, 40)} (relative; [-n] = n steps back)",
        fontsize=9,
    )
    return figure_bytes(fig, fmt)


def faithfulness_curves(result: FaithfulnessResult, title: str = "", fmt: str = "png") -> bytes:
    """Deletion score drop, share leaving the top 10, and insertion score against k, one line per method."""
    curves = result.curves()
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [
        ("deletion", "score", "score drop after deleting top-k"),
        ("deletion", "top10", "share leaving the top 10"),
        ("insertion", "score", "score with only the top-k items"),
    ]
    for ax, (curve, column, label) in zip(axes, panels):
        for method, group in curves[curves["curve"] == curve].groupby("method", sort=False):
            ks = [0, *group["k"]]
            values = [0.0 if curve == "deletion" else np.nan, *group[column]]
            style = dict(ls="--", color="grey") if method == RANDOM else {}
            ax.plot(ks, values, marker="o", ms=3, label=method, **style)
        ax.set_xlabel("k (items deleted / kept)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"faithfulness on {result.protocol.get('n_users', '?')} users", fontsize=10)
    return figure_bytes(fig, fmt)
