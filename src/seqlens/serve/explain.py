"""The bridge from a request's `explain=true` to `seqlens.explain`, and the errors when it cannot be done.

Kept apart from the app so the service still starts and recommends when the model cannot be explained
(a baseline without attention, or a seqlens build without the explain package): those requests get a
clear 4xx/501 naming why, instead of failing the whole endpoint.
"""

from __future__ import annotations

from seqlens.serve.engine import Engine, RequestError
from seqlens.serve.schemas import Attribution, Explanation

DEFAULT_METHOD = "attention"


def _explain_package():
    try:
        import seqlens.explain as package
    except ImportError:
        return None
    return package


def methods(engine: Engine) -> list[str]:
    """Explanation methods this engine can answer with ([] when none)."""
    package = _explain_package()
    if package is None or not hasattr(engine.model, "explain"):
        return []
    return list(getattr(package, "METHODS", (DEFAULT_METHOD,)))


def check(engine: Engine, explain: bool, method: str | None) -> str | None:
    """The method to explain with, None when not asked; raises the 4xx/501 before any work is done."""
    if not explain:
        if method is not None:
            raise RequestError(422, "method is set but explain is false; send explain=true to get an explanation")
        return None
    if _explain_package() is None:
        raise RequestError(501, "explanations are not available: this seqlens build has no seqlens.explain package")
    available = methods(engine)
    if not available:
        raise RequestError(
            422, f"the served model ({type(engine.model).__name__}) cannot be explained; send explain=false"
        )
    method = method or DEFAULT_METHOD
    if method not in available:
        raise RequestError(422, f"method {method!r} is unknown; choose one of {', '.join(available)}")
    return method


def explain(engine: Engine, history: list[str], item: str, method: str) -> Explanation:
    """Attributions of `item` to each history position the model read, and the narrative."""
    exp = engine.model.explain(history=history, item=item, method=method)
    titles = engine.titles
    items = [str(i) for i in exp.items]
    return Explanation(
        item_id=str(exp.recommended),
        title=titles.get(str(exp.recommended)),
        method=str(exp.method),
        narrative=str(exp.narrative),
        attributions=[
            Attribution(position=p, item_id=i, title=titles.get(i), score=float(s))
            for p, (i, s) in enumerate(zip(items, exp.scores))
        ],
    )
