"""The root of every error Sluice raises on purpose, in the client and in the services alike."""


class SluiceError(Exception):
    """Root of Sluice's own errors."""


class Refused(SluiceError):
    """A dependency answered and turned us away for a reason retrying won't fix (credentials, permissions)."""
