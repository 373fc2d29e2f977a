"""ResultStore: the only code that writes item results and job counters (the aggregator's sink)."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from shared.records import JobState
from shared.stores.backlog import return_credits
from shared.stores.result_rows import NotAFirstDelivery, Tally, insert_new, rows_of, upsert
from shared.wire import WireBatchProcessed
from sluice.contracts.events import TERMINAL_STATUSES, CancelJob, JobCounts, JobStatus

AlsoInTransaction = Callable[[asyncpg.Connection, Sequence[WireBatchProcessed]], Awaitable[object]] | None
"""A further step run in the write's transaction after the results are stored (e.g. change detection)."""
_JOB_STATE = "job_id, tenant, status, total_items, succeeded, failed, cancelled, timed_out, error"


@dataclass(frozen=True)
class WriteOutcome:
    inserted: int = 0
    """Rows written: new ones plus failed ones replaced by a later generation."""
    duplicates: int = 0
    replaced: int = 0
    jobs: list[JobState] = field(default_factory=list)
    """Every known job the write touched, with its counts after the write."""
    finished: list[JobState] = field(default_factory=list)
    """Jobs this write moved to a terminal status (their lifecycle event is due)."""
    unknown_jobs: set[UUID] = field(default_factory=set)
    """Job ids with no job row: their results were not written (the caller routes them aside)."""
    also: object = None
    """What the caller's ``also`` step returned (e.g. change detection), when it ran."""


def _state(row: asyncpg.Record) -> JobState:
    counts = JobCounts(
        total=row["total_items"],
        succeeded=row["succeeded"],
        failed=row["failed"],
        cancelled=row["cancelled"],
        timed_out=row["timed_out"],
    )
    return JobState(row["job_id"], row["tenant"], JobStatus(row["status"]), counts, row["error"])


async def _count(connection: asyncpg.Connection, tallies: Sequence[Tally]) -> set[UUID]:
    """Add what was stored to the job counters; returns the jobs counted (those that have a row)."""
    rows = await connection.fetch(
        # A replaced timed_out row the scheduler counted as failed (sweeps.TIMED_OUT_COUNTER)
        # comes off failed: no counter goes below zero and done stays right either way.
        """UPDATE jobs j SET succeeded = j.succeeded + d.succeeded,
                             failed = j.failed + d.failed + least(j.timed_out + d.timed_out, 0),
                             cancelled = j.cancelled + d.cancelled,
                             timed_out = greatest(j.timed_out + d.timed_out, 0),
                             started_at = coalesce(j.started_at, now()),
                             last_progress_at = now(),
                             status = CASE WHEN j.status = 'queued' THEN 'running' ELSE j.status END
           FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[], $5::int[])
                AS d(job_id, succeeded, failed, cancelled, timed_out)
           WHERE j.job_id = d.job_id
           RETURNING j.job_id""",
        [t.job_id for t in tallies], [t.succeeded for t in tallies], [t.failed for t in tallies],
        [t.cancelled for t in tallies], [t.timed_out for t in tallies],
    )  # fmt: skip
    return {row[0] for row in rows}


_FINISH = f"""WITH finished AS (
        UPDATE jobs SET finished_at = now(), lifecycle_announced = false,
            status = CASE WHEN failed = 0 AND timed_out = 0 AND cancelled = 0 THEN 'completed'
                          WHEN succeeded = 0 AND cancelled = 0 THEN 'failed'
                          WHEN succeeded = 0 AND failed = 0 AND timed_out = 0 THEN 'cancelled'
                          ELSE 'partially_failed' END,
            error = CASE WHEN succeeded = 0 AND cancelled = 0 THEN 'all ' || total_items || ' items failed'
                         WHEN status = 'failed' THEN NULL ELSE error END
        WHERE job_id = ANY($1::uuid[]) AND succeeded + failed + cancelled + timed_out >= total_items
          AND (status <> ALL($2::text[]) OR (job_id = ANY($3::uuid[]) AND status IN ('partially_failed', 'failed')))
        RETURNING {_JOB_STATE})
    SELECT true AS finishing, * FROM finished
    UNION ALL
    SELECT false, {_JOB_STATE} FROM jobs
    WHERE job_id = ANY($1::uuid[]) AND job_id NOT IN (SELECT job_id FROM finished)"""
"""Finish every touched job whose results are all in (a job that ended with failures is recomputed when a later
generation replaced some of them, and announced again; cancelled jobs stay cancelled), and read every touched
job's state, in one statement (the second part reads the rows as they were before the update: those it returns
were not updated by it)."""


async def _finish(
    connection: asyncpg.Connection, touched: list[UUID], recomputed: list[UUID]
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """(the jobs this write finished, the state of every touched job)."""
    if not touched:
        return [], []
    rows = await connection.fetch(_FINISH, touched, TERMINAL_STATUSES, recomputed)
    return [row for row in rows if row["finishing"]], rows


class ResultStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(
        self,
        batches: Sequence[WireBatchProcessed],
        cancels: Sequence[CancelJob] = (),
        *,
        also: AlsoInTransaction = None,
    ) -> WriteOutcome:
        """Write results and apply cancellations idempotently, in one transaction.

        1. store the rows and count, per job and status, only the rows actually stored, so a redelivery counts
           nothing. A first delivery (nearly every write) is COPYed straight into item_results; if any row is
           stored already, may replace one, comes twice, or belongs to no job, that transaction is rolled back
           and the write is made again the careful way: the jobs looked up first (results of unknown jobs are
           not written, and are reported), the rows upserted (see result_rows);
        2. the batches leave the dispatch backlog (their in-flight credit returns; the dispatcher is woken);
        3. add the counts to the job counters; run ``also``; cancel the jobs asked to be cancelled;
        4. finish every touched job whose results are all in;
        5. commit. The caller commits Kafka offsets only after this returns.
        """
        if batches and not any(r.generation for b in batches for r in b.results):
            try:
                return await self._write(batches, cancels, also, first_delivery=True)
            except NotAFirstDelivery:
                pass
        return await self._write(batches, cancels, also, first_delivery=False)

    async def _write(
        self,
        batches: Sequence[WireBatchProcessed],
        cancels: Sequence[CancelJob],
        also: AlsoInTransaction,
        *,
        first_delivery: bool,
    ) -> WriteOutcome:
        cancel_ids = list(dict.fromkeys(c.job_id for c in cancels))
        also_result: object = None
        async with self._pool.acquire() as connection, connection.transaction():
            tallies: list[Tally] = []
            unknown: set[UUID] = set()
            if batches:
                job_ids = {b.job_id for b in batches}
                if first_delivery:
                    known = job_ids
                    rows = rows_of(batches, known)
                    tallies = await insert_new(connection, rows)
                else:
                    known = {row[0] for row in await connection.fetch(
                        "SELECT job_id FROM jobs WHERE job_id = ANY($1::uuid[])", list(job_ids))}  # fmt: skip
                    unknown = job_ids - known
                    rows = rows_of(batches, known)
                    tallies = await upsert(connection, rows) if rows else []
                await return_credits(connection, [(b.job_id, b.batch_index) for b in batches if b.job_id in known])
                counted = await _count(connection, tallies)
                if first_delivery and counted != job_ids:
                    raise NotAFirstDelivery  # results of a job with no row: the careful way sets them aside
                if also is not None and rows:
                    also_result = await also(connection, [b for b in batches if b.job_id in known])
            finished = []
            if cancel_ids:
                finished += await connection.fetch(
                    f"""UPDATE jobs SET status = 'cancelled', finished_at = now(),
                                        cancel_requested_at = coalesce(cancel_requested_at, now()),
                                        error = coalesce(error, 'cancelled by request')
                        WHERE job_id = ANY($1::uuid[]) AND status <> ALL($2::text[])
                        RETURNING {_JOB_STATE}""",
                    cancel_ids, TERMINAL_STATUSES,
                )  # fmt: skip
            touched = list(dict.fromkeys([t.job_id for t in tallies] + cancel_ids))
            finishing, states = await _finish(connection, touched, [t.job_id for t in tallies if t.replaced])
            finished += finishing
        replaced = sum(t.replaced for t in tallies)
        inserted = sum(t.inserted for t in tallies) + replaced
        known_rows = sum(len(b.results) for b in batches if b.job_id not in unknown)
        return WriteOutcome(
            inserted=inserted,
            duplicates=known_rows - inserted,
            replaced=replaced,
            jobs=[_state(row) for row in states],
            finished=[_state(row) for row in finished],
            unknown_jobs=unknown,
            also=also_result,
        )

    async def unannounced(self, limit: int = 100, finished_s_ago: float = 0.0) -> list[JobState]:
        """Terminal jobs whose lifecycle event was not yet confirmed as published, finished at least
        ``finished_s_ago`` seconds ago (a younger one is still being announced by the poll that finished it)."""
        rows = await self._pool.fetch(
            f"""SELECT {_JOB_STATE} FROM jobs WHERE NOT lifecycle_announced AND status = ANY($1::text[])
                  AND ($3 = 0 OR finished_at IS NULL OR finished_at <= now() - make_interval(secs => $3))
                ORDER BY finished_at LIMIT $2""",
            TERMINAL_STATUSES, limit, finished_s_ago,
        )  # fmt: skip
        return [_state(row) for row in rows]

    async def mark_announced(self, job_ids: Sequence[UUID]) -> None:
        await self._pool.execute(
            "UPDATE jobs SET lifecycle_announced = true WHERE job_id = ANY($1::uuid[])", list(job_ids)
        )
