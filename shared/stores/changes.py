"""ChangeStore: judges new results against each item's previous one, inside the aggregator's write transaction."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from shared.fingerprints import item_key
from shared.kinds import Kind
from shared.wire import WireBatchProcessed, value_of
from sluice.contracts.events import ItemStatus

_COLUMNS = ("tenant", "kind", "item_key", "job_id", "item_index", "fingerprint")
_TABLE = """CREATE TEMP TABLE IF NOT EXISTS incoming_fingerprints (
    tenant text, kind text, item_key text, job_id uuid, item_index integer, fingerprint text
) ON COMMIT DELETE ROWS"""
# Written so the plan stays linear in the rows of one write. The statistics say `change IS NULL` matches no row
# (results are judged as soon as they are written), so a plain join made PostgreSQL scan item_results and, per
# row, all of `incoming` (quadratic in the write's rows); the LATERAL ... LIMIT 1 cannot be flattened, so
# each incoming row is looked up by the primary key. Likewise item_states is joined directly: an
# `IN (SELECT … FROM incoming)` filter became a scan of `incoming` per row.
_JUDGE = """WITH incoming AS (
        SELECT DISTINCT ON (f.job_id, f.item_index) f.*
        FROM incoming_fingerprints f
        CROSS JOIN LATERAL (
            SELECT 1 FROM item_results r
            WHERE r.job_id = f.job_id AND r.item_index = f.item_index AND r.status = 'succeeded' AND r.change IS NULL
            LIMIT 1) unjudged
        ORDER BY f.job_id, f.item_index),
    judged AS (
        UPDATE item_results r
        SET fingerprint = i.fingerprint,
            change = CASE WHEN p.fingerprint IS NULL THEN 'new'
                          WHEN p.fingerprint = i.fingerprint THEN 'unchanged' ELSE 'changed' END
        FROM incoming i LEFT JOIN item_states p USING (tenant, kind, item_key)
        WHERE r.job_id = i.job_id AND r.item_index = i.item_index
        RETURNING r.job_id, r.item_index, r.change, i.tenant, i.kind, i.item_key, i.fingerprint),
    remembered AS (
        INSERT INTO item_states AS s (tenant, kind, item_key, fingerprint, checks, changes, last_job_id)
        SELECT DISTINCT ON (tenant, kind, item_key)
               tenant, kind, item_key, fingerprint, 1, (change = 'changed')::int, job_id
        FROM judged ORDER BY tenant, kind, item_key, (change = 'changed') DESC
        ON CONFLICT (tenant, kind, item_key) DO UPDATE
            SET fingerprint = excluded.fingerprint, checks = s.checks + 1, changes = s.changes + excluded.changes,
                last_job_id = excluded.last_job_id, updated_at = now())
    SELECT job_id, item_index, change FROM judged"""
"""One statement per write: only rows this write stored and nobody judged yet (so a redelivery judges nothing),
each compared with the item's last fingerprint; the item's state then takes the new fingerprint and counts the
check (and the change). Several results of one item in one write are judged against the same previous state."""


@dataclass
class JobChanges:
    """How one job's newly written results compare with their items' previous results."""

    job_id: UUID
    tenant: str
    kind: str
    changed: list[int] = field(default_factory=list)
    unchanged: int = 0
    new: int = 0


def _rows(kinds: Mapping[str, Kind], batches: Sequence[WireBatchProcessed]) -> list[tuple[object, ...]]:
    return [
        (b.tenant, b.kind, item_key(kinds, b.kind, value_of(r.input)), b.job_id, r.index, r.fingerprint)
        for b in batches
        for r in b.results
        if r.status is ItemStatus.SUCCEEDED and r.fingerprint is not None
    ]


class ChangeStore:
    def __init__(self, kinds: Mapping[str, Kind]) -> None:
        self._kinds = kinds

    async def judge(self, connection: asyncpg.Connection, batches: Sequence[WireBatchProcessed]) -> list[JobChanges]:
        """Mark the results just written changed, unchanged or new; call inside the write's transaction."""
        rows = _rows(self._kinds, batches)
        if not rows:
            return []
        await connection.execute(_TABLE)
        await connection.copy_records_to_table("incoming_fingerprints", records=rows, columns=_COLUMNS)
        judged = await connection.fetch(_JUDGE)
        owners = {b.job_id: (b.tenant, b.kind) for b in batches}
        by_job: dict[UUID, JobChanges] = {}
        for job_id, item_index, change in judged:
            changes = by_job.get(job_id)
            if changes is None:
                changes = by_job[job_id] = JobChanges(job_id, *owners[job_id])
            if change == "changed":
                changes.changed.append(item_index)
            elif change == "unchanged":
                changes.unchanged += 1
            else:
                changes.new += 1
        for changes in by_job.values():
            changes.changed.sort()  # only the changed indexes are listed; sorting every row showed in the sink's CPU
        return [by_job[job_id] for job_id in sorted(by_job, key=str)]
