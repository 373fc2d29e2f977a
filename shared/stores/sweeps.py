"""SweepStore: the scheduler's SQL for job deadlines, stall detection and result retention.

Every method takes ``now`` (or a cutoff) from the caller, so tests drive it with explicit times.
"""

import logging
from datetime import datetime, timedelta

import asyncpg

from shared.records import PurgeOutcome, StalledJob, SweepOutcome, TimedOutJob
from sluice.contracts.events import ItemStatus

log = logging.getLogger(__name__)


SWEEP_LOCK_ID = 0x51_1C_E0_03
"""Advisory lock key for one timeout-and-stall sweep: one replica sweeps at a time."""
PURGE_LOCK_ID = 0x51_1C_E0_04
"""Advisory lock key for one retention chunk."""

SWEEP_LOCK_TIMEOUT = "500ms"
"""The sweep gives way to a concurrent aggregator write rather than make it wait (or deadlock) for long."""

_UNFINISHED = ["queued", "running"]


def timeout_error(timeout_s: float, unfinished: int) -> str:
    """The job's error once it timed out."""
    return f"timed out after {timeout_s:g} s: {unfinished} items unfinished"


def item_timeout_error(timeout_s: float) -> str:
    return f"job timed out after {timeout_s:g} s"


class SweepStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def sweep(
        self, now: datetime, *, default_timeout_s: float, stall_window_s: float, max_jobs: int = 100
    ) -> SweepOutcome:
        """Time out overdue jobs, stamp default deadlines and mark stalls, in one transaction.

        1. take the sweep lock (pg_try_advisory_xact_lock) or return at once: another replica is sweeping;
        2. for at most ``max_jobs`` unfinished jobs past their deadline (created_at + ``default_timeout_s`` for
           jobs without one), insert a timed_out row for every item with no row yet (ON CONFLICT DO NOTHING, so
           a result written meanwhile wins), then add the rows inserted to the counters and end the job (failed
           if nothing succeeded, else partially_failed) with lifecycle_announced = false, so the aggregator's
           sweep publishes its lifecycle event;
        3. give unfinished jobs without a deadline created_at + ``default_timeout_s``;
        4. mark running jobs without a result for ``stall_window_s`` stalled; clear the rest;
        5. commit. Rows are inserted before job rows are locked, in the aggregator's order, and a lock wait
           longer than SWEEP_LOCK_TIMEOUT aborts the sweep (the next one retries) instead of the write.
        """
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", SWEEP_LOCK_ID):
                    return SweepOutcome(swept=False)
                await connection.execute(f"SET LOCAL lock_timeout = '{SWEEP_LOCK_TIMEOUT}'")
                timed_out = await _time_out_overdue(connection, now, max_jobs, default_timeout_s)
                quiet_since = now - timedelta(seconds=stall_window_s)
                stamped = await connection.execute(
                    """UPDATE jobs SET deadline_at = created_at + $1::float8 * interval '1 second'
                       WHERE deadline_at IS NULL AND status = ANY($2::text[])""",
                    default_timeout_s, _UNFINISHED,
                )  # fmt: skip
                stalled = await connection.fetch(
                    """UPDATE jobs SET stalled_since = coalesce(last_progress_at, started_at)
                                                       + $2::float8 * interval '1 second'
                       WHERE status = 'running' AND stalled_since IS NULL
                         AND coalesce(last_progress_at, started_at) <= $1
                       RETURNING job_id, tenant, stalled_since, last_progress_at""",
                    quiet_since, stall_window_s,
                )  # fmt: skip
                unstalled = await connection.execute(
                    """UPDATE jobs SET stalled_since = NULL
                       WHERE stalled_since IS NOT NULL
                         AND (status <> 'running'
                              OR coalesce(last_progress_at, started_at) > $1)""",
                    quiet_since,
                )  # fmt: skip
        except asyncpg.LockNotAvailableError:
            log.info("sweep gave way to a concurrent write; the next sweep retries")
            return SweepOutcome(swept=False)
        return SweepOutcome(
            swept=True,
            deadlines_stamped=_count(stamped),
            timed_out=tuple(timed_out),
            newly_stalled=tuple(StalledJob(**dict(row)) for row in stalled),
            unstalled=_count(unstalled),
        )

    async def stalled_count(self) -> int:
        """Running jobs currently marked stalled (for the log now, a gauge later)."""
        return await self._pool.fetchval(
            "SELECT count(*) FROM jobs WHERE stalled_since IS NOT NULL AND status = 'running'"
        )

    async def purge_finished(self, cutoff: datetime, *, chunk: int = 10_000) -> PurgeOutcome:
        """Delete jobs finished before ``cutoff`` and their results, ``chunk`` rows per statement.

        Each chunk is its own short transaction under the purge lock; a job row goes only after its results,
        so an interrupted purge leaves nothing orphaned and the next one carries on.
        """
        results = jobs = 0
        while True:
            async with self._pool.acquire() as connection, connection.transaction():
                if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", PURGE_LOCK_ID):
                    break
                expired = [
                    row["job_id"]
                    for row in await connection.fetch(
                        "SELECT job_id FROM jobs WHERE finished_at < $1 ORDER BY finished_at LIMIT 100", cutoff
                    )
                ]
                if not expired:
                    break
                deleted = _count(
                    await connection.execute(
                        """DELETE FROM item_results WHERE (job_id, item_index) IN (
                               SELECT job_id, item_index FROM item_results WHERE job_id = ANY($1::uuid[]) LIMIT $2)""",
                        expired,
                        chunk,
                    )  # fmt: skip
                )
                results += deleted
                if deleted < chunk:  # these jobs have no results left: remove them too
                    jobs += _count(
                        await connection.execute(
                            "DELETE FROM jobs WHERE job_id = ANY($1::uuid[]) AND finished_at < $2", expired, cutoff
                        )
                    )
        return PurgeOutcome(results=results, jobs=jobs)


async def _time_out_overdue(
    connection: asyncpg.Connection, now: datetime, max_jobs: int, default_timeout_s: float
) -> list[TimedOutJob]:
    due = await connection.fetch(
        """WITH unfinished AS (
               SELECT job_id, total_items, created_at,
                      coalesce(deadline_at, created_at + $4::float8 * interval '1 second') AS deadline
               FROM jobs WHERE status = ANY($1::text[]) AND (deadline_at <= $2 OR deadline_at IS NULL))
           SELECT job_id, total_items, extract(epoch FROM deadline - created_at)::float8 AS timeout_s
           FROM unfinished WHERE deadline <= $2 ORDER BY deadline LIMIT $3""",
        _UNFINISHED, now, max_jobs, default_timeout_s,
    )  # fmt: skip
    if not due:
        return []
    inserted = {
        row["job_id"]: row["rows"]
        for row in await connection.fetch(
            """WITH due(job_id, total, error) AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[])),
                    inserted AS (
                        INSERT INTO item_results (job_id, item_index, status, error, error_type, attempts,
                                                  duration_ms, recorded_at)
                        SELECT d.job_id, i, $4, d.error, 'JobTimedOut', 0, 0, $5
                        FROM due d, generate_series(0, d.total - 1) AS i
                        ORDER BY d.job_id, i
                        ON CONFLICT DO NOTHING
                        RETURNING job_id)
               SELECT job_id, count(*) AS rows FROM inserted GROUP BY job_id""",
            [d["job_id"] for d in due],
            [d["total_items"] for d in due],
            [item_timeout_error(d["timeout_s"]) for d in due],
            ItemStatus.TIMED_OUT.value,
            now,
        )  # fmt: skip
    }
    errors = [timeout_error(d["timeout_s"], inserted.get(d["job_id"], 0)) for d in due]
    ended = await connection.fetch(
        """UPDATE jobs j SET timed_out = j.timed_out + d.rows,
                status = CASE WHEN j.succeeded = 0 THEN 'failed' ELSE 'partially_failed' END,
                finished_at = $4, error = d.error, lifecycle_announced = false, stalled_since = NULL
            FROM unnest($1::uuid[], $2::int[], $3::text[]) AS d(job_id, rows, error)
            WHERE j.job_id = d.job_id AND j.status = ANY($5::text[])
            RETURNING j.job_id, j.tenant, j.status, d.rows, d.error""",
        [d["job_id"] for d in due], [inserted.get(d["job_id"], 0) for d in due], errors, now, _UNFINISHED,
    )  # fmt: skip
    return [TimedOutJob(r["job_id"], r["tenant"], r["status"], r["rows"], r["error"]) for r in ended]


def _count(status: str) -> int:
    """The row count from a command tag such as 'UPDATE 3' or 'DELETE 0'."""
    return int(status.rsplit(" ", 1)[-1])
