"""JobStats: counts over the jobs table for gauges and the dashboard (read-only)."""

from typing import Any

import asyncpg


class JobStats:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def by_status(self) -> dict[str, int]:
        rows = await self._pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        return {row["status"]: row["n"] for row in rows}

    async def stalled(self) -> int:
        return await self._pool.fetchval("SELECT count(*) FROM jobs WHERE stalled_since IS NOT NULL")

    async def recent_jobs(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        """The tenant's latest jobs with their counters, newest first."""
        rows = await self._pool.fetch(
            """SELECT job_id, kind, status, total_items, succeeded, failed, cancelled, timed_out, created_at,
                      finished_at
               FROM jobs WHERE tenant = $1 ORDER BY created_at DESC LIMIT $2""",
            tenant, limit,
        )  # fmt: skip
        return [dict(row) for row in rows]

    async def throughput(self, tenant: str, minutes: int) -> list[dict[str, Any]]:
        """Per minute over the last ``minutes``: results recorded for the tenant's jobs of the last day, and how many
        of them failed."""
        rows = await self._pool.fetch(
            """SELECT date_trunc('minute', r.recorded_at) AS minute, count(*) AS items,
                      count(*) FILTER (WHERE r.status IN ('failed', 'timed_out')) AS failed
               FROM item_results r JOIN jobs j USING (job_id)
               WHERE j.tenant = $1 AND j.created_at > now() - interval '1 day'
                 AND r.recorded_at > now() - make_interval(mins => $2)
               GROUP BY 1 ORDER BY 1""",
            tenant, minutes,
        )  # fmt: skip
        return [dict(row) for row in rows]

    async def dead_letters(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """SELECT id, job_id, kind, reason, error_type, item_index, recorded_at
               FROM dead_letters WHERE tenant = $1 ORDER BY id DESC LIMIT $2""",
            tenant, limit,
        )  # fmt: skip
        return [dict(row) for row in rows]
