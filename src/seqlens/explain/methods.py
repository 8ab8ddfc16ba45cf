"""The explanation methods by name, without torch: what `seqlens explain --help` lists and what the default is.

attributions.py computes them (each is described there) and explanation.py applies the default; both import
these names from here, and they stay importable there.
"""

METHODS = ("masking", "occlusion", "intgrad", "gradxinput", "gradrollout", "attention", "rollout", "norm")
#: methods whose scores say how much an item raised (> 0) or lowered (< 0) the explained item's score
SIGNED = frozenset({"masking", "occlusion", "intgrad", "gradxinput"})
#: methods that give every candidate item the same scores in SASRec (all read the last hidden state)
TARGET_AGNOSTIC = frozenset({"attention", "rollout", "norm"})

#: the method used when none is named, chosen by measurement (docs/explanations.md): exact in-place masking
#: cites only items whose hiding lowers the score and matches exact occlusion's deletion curve on data it was
#: not chosen on; it is the fastest method that does (about 35 ms for a window of 200 on one CPU thread)
DEFAULT_METHOD = "masking"
