__version__ = "0.1.0"
#: Bumped when the on-disk model layout changes incompatibly; `seqlens.load` refuses other values.
ARTIFACT_FORMAT = 1
