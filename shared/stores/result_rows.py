"""The two ways ResultStore stores a write's result rows, and what each tells about the rows it stored.

A first delivery, which is nearly every write, goes straight into ``item_results`` by COPY (``insert_new``).
Anything that may meet a row already stored (a redelivered poll, a redriven item's later generation, a
concurrent writer) goes through a temporary table and one ``INSERT … ON CONFLICT`` (``upsert``), which stores
only what is new or replaces a failed row, and counts only that.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from msgspec import Raw

from shared.wire import WireBatchProcessed
from sluice.contracts.events import ItemStatus

COLUMNS = (
    "job_id", "item_index", "status", "input", "output", "error", "error_type", "attempts", "duration_ms", "generation",
)  # fmt: skip
_INCOMING_TABLE = """CREATE TEMP TABLE IF NOT EXISTS incoming_results (
    job_id uuid, item_index integer, status text, input jsonb, output jsonb,
    error text, error_type text, attempts integer, duration_ms double precision, generation integer
) ON COMMIT DELETE ROWS"""
_UPSERT = """WITH incoming AS (
        SELECT DISTINCT ON (i.job_id, i.item_index) i.*
        FROM incoming_results i JOIN jobs j ON j.job_id = i.job_id
        ORDER BY i.job_id, i.item_index, i.generation DESC),
    previous AS (
        SELECT r.job_id, r.item_index, r.status FROM item_results r JOIN incoming i USING (job_id, item_index)),
    written AS (
        INSERT INTO item_results AS r (job_id, item_index, status, input, output, error, error_type, attempts,
                                       duration_ms, generation)
        SELECT job_id, item_index, status, input, output, error, error_type, attempts, duration_ms, generation
        FROM incoming
        ON CONFLICT (job_id, item_index) DO UPDATE
            SET status = excluded.status, input = excluded.input, output = excluded.output, error = excluded.error,
                error_type = excluded.error_type, attempts = excluded.attempts, duration_ms = excluded.duration_ms,
                generation = excluded.generation, recorded_at = now()
            WHERE r.status IN ('failed', 'timed_out') AND excluded.generation > r.generation
        RETURNING r.job_id, r.item_index, r.status)
    SELECT w.job_id,
           count(*) FILTER (WHERE p.status IS NULL) AS inserted,
           count(*) FILTER (WHERE p.status IS NOT NULL) AS replaced,
           count(*) FILTER (WHERE w.status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE w.status = 'failed') - count(*) FILTER (WHERE p.status = 'failed') AS failed,
           count(*) FILTER (WHERE w.status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE w.status = 'timed_out') - count(*) FILTER (WHERE p.status = 'timed_out') AS timed_out
    FROM written w LEFT JOIN previous p USING (job_id, item_index) GROUP BY w.job_id"""
"""Insert new results; replace a failed or timed-out one only with a later generation's. Per job: how many rows
were inserted or replaced and how each counter moves (a replaced row leaves its old status's counter)."""

Row = tuple[UUID, int, str, Raw, Raw, str | None, str | None, int, float, int]
"""One item_results row, in COLUMNS order."""


class NotAFirstDelivery(Exception):
    """A write's rows cannot be COPYed as they are (one is stored already, comes twice, or has no job): its
    transaction is rolled back and the write is made again through ``upsert``."""


@dataclass(frozen=True)
class Tally:
    """What one write stored of one job's results, and how its counters move."""

    job_id: UUID
    inserted: int = 0
    replaced: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0


def rows_of(batches: Iterable[WireBatchProcessed], known_jobs: set[UUID]) -> list[Row]:
    """One row per result of the known jobs, in COLUMNS order. Two results of one item may both be there (a
    batch released twice): ``insert_new`` then refuses the rows and ``upsert`` keeps the later generation."""
    return [
        (job_id, r.index, r.status.value, r.input, r.output, _text(r.error), _text(r.error_type), r.attempts,
         r.duration_ms, r.generation)
        for batch in batches
        if (job_id := batch.job_id) in known_jobs
        for r in batch.results
    ]  # fmt: skip


async def insert_new(connection: asyncpg.Connection, rows: Sequence[Row]) -> list[Tally]:
    """COPY the rows straight into item_results and count them. Raises NotAFirstDelivery (the transaction is
    then unusable and must be rolled back) if any of them is stored already or comes twice."""
    try:
        await connection.copy_records_to_table("item_results", records=rows, columns=COLUMNS)
    except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as exc:
        raise NotAFirstDelivery from exc
    counts: dict[UUID, dict[str, int]] = {}
    for row in rows:
        per_status = counts.setdefault(row[0], {})  # COLUMNS: job_id
        status = row[2]  # COLUMNS: status
        per_status[status] = per_status.get(status, 0) + 1
    return [
        Tally(
            job_id,
            inserted=sum(by_status.values()),
            succeeded=by_status.get(ItemStatus.SUCCEEDED.value, 0),
            failed=by_status.get(ItemStatus.FAILED.value, 0),
            cancelled=by_status.get(ItemStatus.CANCELLED.value, 0),
            timed_out=by_status.get(ItemStatus.TIMED_OUT.value, 0),
        )
        for job_id, by_status in counts.items()
    ]


async def upsert(connection: asyncpg.Connection, rows: Sequence[Row]) -> list[Tally]:
    """Store what is new (or replaces a failed row with a later generation) and count only that."""
    await connection.execute(_INCOMING_TABLE)
    await connection.copy_records_to_table("incoming_results", records=rows, columns=COLUMNS)
    return [Tally(**dict(record)) for record in await connection.fetch(_UPSERT)]


def _text(value: str | None) -> str | None:
    return value if value is None or "\x00" not in value else value.replace("\x00", "\ufffd")
