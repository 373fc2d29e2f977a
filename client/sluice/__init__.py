"""Sluice's client side: the SDK (``sluice.client``), the wire contracts (``sluice.contracts``) and the
``sluice`` command (``sluice.cli``)."""
