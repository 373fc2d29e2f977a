"""The sink's change-detection step: judge results in the write's transaction, then announce what changed."""

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from shared.stores.changes import ChangeStore, JobChanges
from shared.wire import WireBatchProcessed
from sluice.contracts.events import ItemsChanged


@dataclass
class ChangeStep:
    """Runs inside ResultStore.record (``also=``); its outcome becomes ItemsChanged events."""

    store: ChangeStore

    async def __call__(self, connection: asyncpg.Connection, batches: Sequence[WireBatchProcessed]) -> list[JobChanges]:
        return await self.store.judge(connection, batches)


def change_events(judged: object) -> list[ItemsChanged]:
    """One ItemsChanged per job with at least one changed item (new or unchanged-only writes stay quiet)."""
    if not isinstance(judged, list):
        return []
    return [
        ItemsChanged(tenant=c.tenant, job_id=c.job_id, kind=c.kind, changed=c.changed, unchanged=c.unchanged, new=c.new)
        for c in judged
        if isinstance(c, JobChanges) and c.changed
    ]
