"""A self-contained HTML report (images embedded as base64) explaining recommendations for a few users.

Per user: the narrative of the chosen method, the top recommendations, a table of the most attributed
history items under every method, a bar chart comparing the methods and per-layer/head attention heatmaps.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

import seqlens
from seqlens.explain.attributions import METHODS
from seqlens.explain.explanation import DEFAULT_METHOD, Explanation, explain_batch
from seqlens.explain.narrative import DEFAULT_VERB, time_ago
from seqlens.explain.plots import attention_heatmaps, attribution_bars
from seqlens.explain.privacy import OTHER, as_deny_list

if TYPE_CHECKING:  # annotations only: explain reads fitted models, it does not build them
    from seqlens.recommenders.neural import NextItemModel

METHOD_NOTES = {
    "attention": "last layer's attention from the last position, mean over heads",
    "rollout": "attention rollout over all layers with the residual (Abnar &amp; Zuidema 2020)",
    "norm": "attention weight &times; norm of the transformed value vector (Kobayashi et al. 2020)",
    "gradrollout": "attention rollout weighted by the gradient of the item's score (Chefer et al. 2021)",
    "gradxinput": "gradient of the item's score w.r.t. each item embedding, dotted with it",
    "occlusion": "exact drop of the item's score when the item is removed from the history",
    "masking": "exact drop of the item's score when the item is hidden in place (the latest item: removed)",
    "intgrad": "integrated gradients of the item's score over the item embeddings (Sundararajan et al. 2017)",
}

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 2.2em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #666; font-size: 0.9em; }
.narrative { background: #f3f7ff; border-left: 4px solid #3b6fd8; padding: 0.8em 1em; font-size: 1.1em; margin: 1em 0; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; font-size: 0.85em; }
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _narrative_html(e: Explanation) -> str:
    """The narrative with titles in italics: rebuilt from escaped pieces rather than by regex on the text."""
    text = html.escape(e.narrative)
    names = {t for t in [e.recommended_title or e.recommended, *(t or i for i, t, _ in e.top(50))] if t}
    for name in sorted(names, key=len, reverse=True):
        escaped = html.escape(name)
        text = text.replace(escaped, f"<em>{escaped}</em>", 1) if escaped in text else text
    return text


def _history_table(explanations: Mapping[str, Explanation], rows: int) -> str:
    """The union of each method's top positions (chronological), with each method's share in percent."""
    first = next(iter(explanations.values()))
    n = len(first.items)
    positions = sorted({int(j) for e in explanations.values() for j in np.argsort(-e.scores, kind="stable")[:rows]})
    head = "".join(f'<th class="num">{html.escape(m)}</th>' for m in explanations)
    out = [f"<table><tr><th>steps back</th><th>item</th><th>when</th>{head}</tr>"]
    reference = max((t for t in first.timestamps or [] if t is not None), default=None)
    for j in positions:
        title = first.titles[j] or first.items[j]
        when = ""
        stamp = None if first.timestamps is None else first.timestamps[j]
        if stamp is not None and reference is not None:
            when = time_ago(reference - stamp)
        cells = "".join(f'<td class="num">{100 * e.shares[j]:.1f}%</td>' for e in explanations.values())
        out.append(f"<tr><td class='num'>{n - j}</td><td>{html.escape(title)}</td><td>{when}</td>{cells}</tr>")
    out.append("</table>")
    return "".join(out)


def html_report(
    model: NextItemModel,
    users: Sequence[str] | None = None,
    histories: Mapping[str, Sequence[str]] | None = None,
    method: str = DEFAULT_METHOD,
    methods: Sequence[str] = METHODS,
    k: int = 5,
    timestamps: Mapping[str, Sequence[int]] | None = None,
    deny=None,
    verb: str = DEFAULT_VERB,
    title: str = "Why these recommendations?",
    heatmap_last: int = 12,
) -> tuple[str, list[Explanation]]:
    """(HTML text, the explanations by `method`) for known `users` or ad-hoc `histories`."""
    deny = as_deny_list(deny)
    methods = [method, *(m for m in methods if m != method)]
    options = dict(k=k, timestamps=timestamps, deny=deny, verb=verb)
    by_method = {m: explain_batch(model, users=users, histories=histories, method=m, **options) for m in methods}
    primary = by_method[method]
    if users is not None:
        recs = model.recommend(users=users, k=5)
        lists = {u: model.history_of(u) for u in map(str, users)}
        _, stored = model.encoded_histories(users=list(lists))  # with the times the model read
        found = {u: stored.times_of(i) for i, u in enumerate(lists)}
        times = {u: None if t is None else t.tolist() for u, t in found.items()}
    else:
        given = histories or {}
        recs = model.recommend(histories=given, k=5, timestamps=timestamps)
        lists = {str(u): list(map(str, h)) for u, h in given.items()}
        times = {str(u): t for u, t in (timestamps or {}).items()}
    titles = model.item_titles_
    params = model.get_params()
    refinement = params.get("refinement", "none")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{type(model).__name__} ({params.get('layers')} layers, {params.get('heads')} head(s), "
        f"max length {params.get('max_len')}, refinement {html.escape(str(refinement))}) trained on "
        f"{html.escape(str(getattr(model, 'dataset_', {}).get('source', '?')))}; seqlens {seqlens.__version__}. "
        f"Narratives use <b>{html.escape(method)}</b>: {METHOD_NOTES[method]}.</p>",
    ]
    parts.append(  # every method is charted below, so the caveat applies whichever one the narratives use
        "<p class='note'>Attention-based methods (attention, rollout, norm) are target-agnostic in SASRec: "
        "every candidate item is scored from the same attention, so they show what the model read, not why "
        "it preferred this item. Gradient-weighted rollout is specific to the item but only shows where the model "
        "looked. Masking, occlusion, integrated gradients and gradient&times;input are signed: a negative score "
        "means the item lowered the recommended item's score, and such items are never cited as reasons.</p>"
    )
    if len(deny):
        parts.append(f"<p class='note'>Items on the privacy deny-list are shown as “{OTHER}” and never named.</p>")
    for i, e in enumerate(primary):
        user = str(e.user)
        mine = recs[recs["user_id"] == user]
        rec_rows = "".join(
            f"<tr><td class='num'>{r.rank}</td><td>{html.escape(titles.get(r.item_id, r.item_id))}</td>"
            f"<td class='num'>{r.score:.3f}</td></tr>"
            for r in mine.itertuples()
        )
        explanations = {m: by_method[m][i] for m in methods}
        parts += [
            f"<h2>User {html.escape(user)}</h2>",
            f"<p class='meta'>{len(lists[user])} items in the history; the model reads the last {len(e.items)}.</p>",
            f"<div class='narrative'>{_narrative_html(e)}</div>",
            "<div class='grid'><div><h3>Top recommendations</h3><table><tr><th class='num'>rank</th><th>item</th>"
            f"<th class='num'>score</th></tr>{rec_rows}</table></div>",
            "<div><h3>Most attributed history items (share per method)</h3>",
            f"{_history_table(explanations, 5)}</div></div>",
            f"<h3>Attribution by method</h3>{_img(attribution_bars(explanations), 'attribution bars')}",
            f"<h3>Attention over the last {min(heatmap_last, len(e.items))} items, per layer and head</h3>",
            "<p class='note'>Row = the position attending, column = the item attended to; the bottom row is the "
            "position that predicts the next item. Weights on older items are not shown.</p>",
            _img(
                attention_heatmaps(model, lists[user], heatmap_last, deny=deny, timestamps=times.get(user)),
                "attention heatmaps",
            ),
        ]
    notes = "".join(f"<li><b>{m}</b>: {METHOD_NOTES[m]}</li>" for m in methods)
    parts.append(
        f"<h2>Methods</h2><ul>{notes}</ul><p class='note'>Shares are each position's part of the method's "
        "positive attribution; negative attributions (the item lowered the score) count as 0. How faithful each "
        "method is on real data is measured in docs/explanations.md.</p></body></html>"
    )
    return "".join(parts), primary
