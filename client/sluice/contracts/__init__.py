"""Sluice's wire contracts, one definition each, imported by the services and by clients alike: the Kafka
messages (``events``), the topic names (``topics``), every header name (``headers``) and intake's REST answers
(``jobs``)."""
