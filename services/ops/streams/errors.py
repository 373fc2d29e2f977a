"""Errors of the operator tools."""

from sluice.errors import SluiceError


class OpsError(SluiceError):
    """An operator command cannot go on (unknown topic, a non-empty database, a bad range)."""
