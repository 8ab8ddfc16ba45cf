"""Errors a user can act on: each names the file, line, column or value at fault."""


class SeqlensError(ValueError):
    """Base class: bad input or a bad artifact, with a one-line message that says where."""


class DataError(SeqlensError):
    """An interaction log, sequence file or history that cannot be used as given."""


class ArtifactError(SeqlensError):
    """A model directory that is missing files, corrupt, or from an incompatible version."""
