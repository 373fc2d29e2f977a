"""ResultStore: the only code that writes item results and job counters (the aggregator's sink)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from shared.events import BatchProcessed, CancelJob, ItemStatus, JobCounts, JobStatus

TERMINAL = [status.value for status in JobStatus if status.is_terminal]

_INCOMING_COLUMNS = (
    "job_id", "item_index", "status", "input", "output", "error", "error_type", "attempts", "duration_ms",
)  # fmt: skip
_INCOMING_TABLE = """CREATE TEMP TABLE IF NOT EXISTS incoming_results (
    job_id uuid, item_index integer, status text, input jsonb, output jsonb,
    error text, error_type text, attempts integer, duration_ms double precision
) ON COMMIT DELETE ROWS"""
_JOB_STATE = "job_id, tenant, status, total_items, succeeded, failed, cancelled, error"


@dataclass(frozen=True)
class JobState:
    job_id: UUID
    tenant: str
    status: JobStatus
    counts: JobCounts
    error: str | None = None


@dataclass(frozen=True)
class WriteOutcome:
    inserted: int = 0
    duplicates: int = 0
    jobs: list[JobState] = field(default_factory=list)
    """Every known job the write touched, with its counts after the write."""
    finished: list[JobState] = field(default_factory=list)
    """Jobs this write moved to a terminal status (their lifecycle event is due)."""
    unknown_jobs: set[UUID] = field(default_factory=set)
    """Job ids with no job row: their results were not written (the caller routes them aside)."""


def _state(row: asyncpg.Record) -> JobState:
    counts = JobCounts(
        total=row["total_items"], succeeded=row["succeeded"], failed=row["failed"], cancelled=row["cancelled"]
    )
    return JobState(row["job_id"], row["tenant"], JobStatus(row["status"]), counts, row["error"])


def _text(value: str | None) -> str | None:
    return value if value is None or "\x00" not in value else value.replace("\x00", "\ufffd")


def _rows(batches: Sequence[BatchProcessed]) -> list[tuple[object, ...]]:
    return [
        (b.job_id, r.index, r.status.value, r.input, r.output, _text(r.error), _text(r.error_type), r.attempts,
         r.duration_ms)
        for b in batches
        for r in b.results
    ]  # fmt: skip


class ResultStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, batches: Sequence[BatchProcessed], cancels: Sequence[CancelJob] = ()) -> WriteOutcome:
        """Write results and apply cancellations idempotently, in one transaction.

        1. COPY the rows into a temporary table;
        2. insert those not yet stored (``ON CONFLICT DO NOTHING`` on (job_id, item_index)) and count,
           per job and status, only the rows actually inserted, so a redelivery counts nothing;
        3. add those counts to the job counters; cancel the jobs asked to be cancelled;
        4. finish every touched job whose results are all in;
        5. commit. The caller commits Kafka offsets only after this returns.
        """
        rows = _rows(batches)
        cancel_ids = list(dict.fromkeys(c.job_id for c in cancels))
        async with self._pool.acquire() as connection, connection.transaction():
            tallies: list[asyncpg.Record] = []
            unknown: set[UUID] = set()
            if rows:
                await connection.execute(_INCOMING_TABLE)
                await connection.copy_records_to_table("incoming_results", records=rows, columns=_INCOMING_COLUMNS)
                unknown = {
                    row["job_id"]
                    for row in await connection.fetch(
                        """SELECT DISTINCT i.job_id FROM incoming_results i
                           WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = i.job_id)"""
                    )
                }
                tallies = await connection.fetch(
                    """WITH inserted AS (
                           INSERT INTO item_results (job_id, item_index, status, input, output, error, error_type,
                                                     attempts, duration_ms)
                           SELECT i.job_id, i.item_index, i.status, i.input, i.output, i.error, i.error_type,
                                  i.attempts, i.duration_ms
                           FROM incoming_results i JOIN jobs j ON j.job_id = i.job_id
                           ON CONFLICT DO NOTHING
                           RETURNING job_id, status)
                       SELECT job_id,
                              count(*) FILTER (WHERE status = $1) AS succeeded,
                              count(*) FILTER (WHERE status = $2) AS failed,
                              count(*) FILTER (WHERE status = $3) AS cancelled
                       FROM inserted GROUP BY job_id""",
                    ItemStatus.SUCCEEDED.value, ItemStatus.FAILED.value, ItemStatus.CANCELLED.value,
                )  # fmt: skip
                await connection.execute(
                    """UPDATE jobs j SET succeeded = j.succeeded + d.succeeded,
                                         failed = j.failed + d.failed,
                                         cancelled = j.cancelled + d.cancelled,
                                         started_at = coalesce(j.started_at, now()),
                                         last_progress_at = now(),
                                         status = CASE WHEN j.status = 'queued' THEN 'running' ELSE j.status END
                       FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[])
                            AS d(job_id, succeeded, failed, cancelled)
                       WHERE j.job_id = d.job_id""",
                    [t["job_id"] for t in tallies], [t["succeeded"] for t in tallies],
                    [t["failed"] for t in tallies], [t["cancelled"] for t in tallies],
                )  # fmt: skip
            finished = []
            if cancel_ids:
                finished += await connection.fetch(
                    f"""UPDATE jobs SET status = 'cancelled', finished_at = now(),
                                        cancel_requested_at = coalesce(cancel_requested_at, now()),
                                        error = coalesce(error, 'cancelled by request')
                        WHERE job_id = ANY($1::uuid[]) AND status <> ALL($2::text[])
                        RETURNING {_JOB_STATE}""",
                    cancel_ids, TERMINAL,
                )  # fmt: skip
            touched = list(dict.fromkeys([t["job_id"] for t in tallies] + cancel_ids))
            finished += await connection.fetch(
                f"""UPDATE jobs SET finished_at = now(),
                        status = CASE WHEN failed = 0 AND cancelled = 0 THEN 'completed'
                                      WHEN succeeded = 0 AND cancelled = 0 THEN 'failed'
                                      WHEN succeeded = 0 AND failed = 0 THEN 'cancelled'
                                      ELSE 'partially_failed' END,
                        error = CASE WHEN succeeded = 0 AND cancelled = 0
                                     THEN 'all ' || total_items || ' items failed' ELSE error END
                    WHERE job_id = ANY($1::uuid[]) AND status <> ALL($2::text[])
                      AND succeeded + failed + cancelled >= total_items
                    RETURNING {_JOB_STATE}""",
                touched, TERMINAL,
            )  # fmt: skip
            states = await connection.fetch(f"SELECT {_JOB_STATE} FROM jobs WHERE job_id = ANY($1::uuid[])", touched)
        inserted = sum(t["succeeded"] + t["failed"] + t["cancelled"] for t in tallies)
        known_rows = sum(len(b.results) for b in batches if b.job_id not in unknown)
        return WriteOutcome(
            inserted=inserted,
            duplicates=known_rows - inserted,
            jobs=[_state(row) for row in states],
            finished=[_state(row) for row in finished],
            unknown_jobs=unknown,
        )

    async def unannounced(self, limit: int = 100) -> list[JobState]:
        """Terminal jobs whose lifecycle event was not yet confirmed as published."""
        rows = await self._pool.fetch(
            f"""SELECT {_JOB_STATE} FROM jobs WHERE NOT lifecycle_announced AND status = ANY($1::text[])
                ORDER BY finished_at LIMIT $2""",
            TERMINAL, limit,
        )  # fmt: skip
        return [_state(row) for row in rows]

    async def mark_announced(self, job_ids: Sequence[UUID]) -> None:
        await self._pool.execute(
            "UPDATE jobs SET lifecycle_announced = true WHERE job_id = ANY($1::uuid[])", list(job_ids)
        )
