"""Explanations of recommendations: attributions by eight methods, narratives, privacy, plots, faithfulness.

Flow: data -> nn -> train -> eval -> explain. This package reads models (nn, recommenders) and uses the
evaluation helpers; nothing here imports the CLI or the service.
"""

from typing import TYPE_CHECKING

from seqlens._lazy import lazy_names

if TYPE_CHECKING:  # imported on first use (seqlens/_lazy.py): importing one module imports no other
    from seqlens.explain.attributions import Attributions, attribute, rollout
    from seqlens.explain.explanation import Explanation, explain, explain_batch
    from seqlens.explain.features import FeatureExplanation, explain_features, feature_attributions
    from seqlens.explain.methods import DEFAULT_METHOD, METHODS, SIGNED, TARGET_AGNOSTIC
    from seqlens.explain.narrative import DEFAULT_VERB, narrative
    from seqlens.explain.privacy import OTHER, DenyList

__all__ = [
    "DEFAULT_METHOD", "DEFAULT_VERB", "METHODS", "OTHER", "SIGNED", "TARGET_AGNOSTIC", "Attributions", "DenyList",
    "Explanation", "attribute", "explain", "explain_batch", "narrative", "rollout", "FeatureExplanation",
    "explain_features", "feature_attributions",
]  # fmt: skip

__getattr__, __dir__ = lazy_names(__name__)
