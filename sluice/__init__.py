"""Sluice's public Python surface for users: the client SDK lives in ``sluice.client``."""
