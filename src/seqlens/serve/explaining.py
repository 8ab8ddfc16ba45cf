"""The bridge from a request's `explain=true` to `seqlens.explain`, and the errors when it cannot be done.

Kept apart from the app so the service still starts and recommends when the model cannot be explained
(a baseline without attention, or a build without the explain package): those requests get a clear
4xx/501 naming why, instead of failing the whole endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np

from seqlens.errors import SeqlensError
from seqlens.serve.engine import Engine, RequestError, Result

if TYPE_CHECKING:
    from seqlens.recommenders.neural import NextItemModel

#: methods cheap enough to run on the event loop (one forward pass); the others (gradient, occlusion)
#: run in a thread so a slow explanation does not hold up the worker's other requests
INLINE = frozenset({"attention", "rollout", "norm"})


def _explain_package():
    try:
        import seqlens.explain as package
    except ImportError:
        return None
    return package


def default_method() -> str | None:
    """The library's default explanation method (None without the explain package)."""
    package = _explain_package()
    return None if package is None else package.DEFAULT_METHOD


def methods(engine: Engine) -> list[str]:
    """Explanation methods this engine can answer with ([] when none): every method, for an attention network."""
    package = _explain_package()
    if package is None or not engine.has_attention:
        return []
    return list(package.METHODS)


def check(engine: Engine, explain: bool, method: str | None) -> str | None:
    """The method to explain with, None when not asked; raises the 4xx/501 before any work is done."""
    if not explain:
        if method is not None:
            raise RequestError(422, "method is set but explain is false; send explain=true to get an explanation")
        return None
    package = _explain_package()
    if package is None:
        raise RequestError(501, "explanations are not available: this seqlens build has no seqlens.explain package")
    available = methods(engine)
    if not available:
        raise RequestError(
            422, f"the served model ({type(engine.model).__name__}) has no attention network to explain; "
            "send explain=false",
        )  # fmt: skip
    method = method or package.DEFAULT_METHOD
    if method not in available:
        raise RequestError(422, f"method {method!r} is unknown; choose one of {', '.join(available)}")
    return method


def from_pass(engine: Engine, result: Result) -> dict | None:
    """The `attention` explanation of the top item straight from the weights of the recommend pass.

    `attention` attributes to each position the last layer's applied weight from the last position,
    averaged over heads: weights the recommend pass has already computed, so a second forward pass (what
    `seqlens.explain.explain` would run) is skipped. The Explanation (shares, narrative, deny-list) is built
    by seqlens.explain's own builder, so both paths give the same answer (the tests compare them with
    `seqlens.explain.explain`). None when there is nothing to explain, and the caller takes the public path.
    """
    if result.attentions is None or len(result.items) == 0:
        return None
    from seqlens.explain.explanation import build_explanation, known_times

    last = result.attentions[-1]  # [heads, T]: the last layer's applied weights of the last position
    exp = build_explanation(
        cast("NextItemModel", engine.model), label="request", window=result.used, scores=last.mean(0).numpy(),
        target=int(result.items[0]), value=float(result.scores[0]), method="attention", per_head=last.numpy(),
        deny=_no_deny(), verb=_verb(), times=known_times(result.used_times),
    )  # fmt: skip
    return _response(exp)


def _no_deny():
    from seqlens.explain.privacy import as_deny_list

    return as_deny_list(None)


def _verb() -> str:
    from seqlens.explain import DEFAULT_VERB

    return DEFAULT_VERB


#: what an explanation request holds: the history window, the item, the window's timestamps, the user's
#: attributes and the request's context (each None when not known)
ExplainRequest = tuple[list[str], str, np.ndarray | None, dict[str, str] | None, dict[str, str] | None]


def explain(
    engine: Engine,
    history: list[str],
    item: str,
    method: str,
    times: np.ndarray | None = None,
    attributes: dict[str, str] | None = None,
    context: dict[str, str] | None = None,
) -> dict:
    """Attributions of `item` to each position of `history` (the window the model read, with its timestamps, the
    user's attributes and the request's context when known) and the narrative."""
    return explain_many(engine, method, [(history, item, times, attributes, context)])[0]


def explain_many(engine: Engine, method: str, requests: list[ExplainRequest]) -> list[dict]:
    """Explanations (JSON shaped like `schemas.Explanation`) of several `ExplainRequest`s, batched; the timestamps
    and attributes are what the recommend pass read."""
    histories = {str(i): r[0] for i, r in enumerate(requests)}
    times = {str(i): r[2].tolist() for i, r in enumerate(requests) if r[2] is not None}
    attributes = {str(i): r[3] for i, r in enumerate(requests) if r[3] is not None}
    context = {str(i): r[4] for i, r in enumerate(requests) if r[4] is not None}
    try:
        from seqlens.explain import explain_batch  # `check` let only explainable models through

        model = cast("NextItemModel", engine.model)
        found = explain_batch(
            model, histories=histories, items=[r[1] for r in requests], method=method, timestamps=times or None,
            user_attributes=attributes or None, context=context or None,
        )  # fmt: skip
    except SeqlensError as e:  # requests were checked already; a failure here is about a history itself
        raise RequestError(422, f"cannot explain: {e}") from None
    return [_response(exp) for exp in found]


def _response(exp) -> dict:
    scores = np.asarray(exp.scores, dtype=np.float64).tolist()
    shares = np.asarray(exp.shares, dtype=np.float64).tolist()
    return {
        "item_id": str(exp.recommended),
        "title": exp.recommended_title,
        "score": float(exp.score),
        "method": str(exp.method),
        "target_agnostic": bool(exp.target_agnostic),
        "signed": bool(exp.signed),
        "narrative": str(exp.narrative),
        "other_share": float(exp.other_share),
        "attributions": [
            {"position": p, "item_id": str(i), "title": t, "score": s, "share": sh}
            for p, (i, t, s, sh) in enumerate(zip(exp.items, exp.titles, scores, shares))
        ],
    }
