"""The root of every error Sluice raises on purpose, in the client and in the services alike."""


class SluiceError(Exception):
    """Root of Sluice's own errors."""
