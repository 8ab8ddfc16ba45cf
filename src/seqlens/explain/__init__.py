"""Explanations of recommendations: attributions by eight methods, narratives, privacy, plots, faithfulness.

Flow: data -> nn -> train -> eval -> explain. This package reads models (nn, recommenders) and uses the
evaluation helpers; nothing here imports the CLI or the service.
"""

from seqlens.explain.attributions import METHODS, SIGNED, TARGET_AGNOSTIC, Attributions, attribute, rollout
from seqlens.explain.explanation import DEFAULT_METHOD, Explanation, explain, explain_batch
from seqlens.explain.narrative import DEFAULT_VERB, narrative
from seqlens.explain.privacy import OTHER, DenyList

__all__ = [
    "DEFAULT_METHOD", "DEFAULT_VERB", "METHODS", "OTHER", "SIGNED", "TARGET_AGNOSTIC", "Attributions", "DenyList",
    "Explanation", "attribute", "explain", "explain_batch", "narrative", "rollout",
]  # fmt: skip
