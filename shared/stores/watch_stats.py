"""WatchStatsStore: the scheduler's per-tenant rescan statistics, computed on its clock (GET /v1/watches/stats)."""

from datetime import datetime, timedelta

import asyncpg


class WatchStatsStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def refresh(self, now: datetime, keep_sent: timedelta) -> list[asyncpg.Record]:
        """Recompute every tenant's statistics on the scheduler's clock; also drop outbox rows sent before
        ``keep_sent`` ago (until then they are the watch's rescan history)."""
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                """WITH per_tenant AS (
                       SELECT w.tenant, count(*) AS watched_items,
                              ceil(coalesce(sum(CASE WHEN w.mode = 'sampled' THEN w.sample_fraction ELSE 1 END)
                                   FILTER (WHERE NOT w.paused AND coalesce(
                                       CASE WHEN w.mode = 'sampled' THEN w.next_due ELSE i.next_due END,
                                       i.trigger_due) <= $1::timestamptz + interval '1 hour'), 0)) AS due_next_hour,
                              ceil(coalesce(sum(CASE WHEN w.mode = 'sampled' THEN w.sample_fraction ELSE 1 END)
                                   FILTER (WHERE NOT w.paused AND coalesce(
                                       CASE WHEN w.mode = 'sampled' THEN w.next_due ELSE i.next_due END,
                                       i.trigger_due) <= $1::timestamptz + interval '1 day'), 0)) AS due_next_day,
                              sum(i.scans) AS scans_issued,
                              coalesce(sum(floor(extract(epoch FROM $1::timestamptz - i.watched_since) / 86400))
                                       FILTER (WHERE i.watched_since <= $1), 0) AS daily_equivalent
                       FROM watched_items i JOIN watches w USING (watch_id) GROUP BY w.tenant),
                   gone AS (DELETE FROM watch_stats WHERE tenant NOT IN (SELECT tenant FROM per_tenant))
                   INSERT INTO watch_stats (tenant, watched_items, due_next_hour, due_next_day, scans_issued,
                                            daily_equivalent, as_of)
                   SELECT tenant, watched_items, due_next_hour, due_next_day, scans_issued, daily_equivalent, $1
                   FROM per_tenant
                   ON CONFLICT (tenant) DO UPDATE SET
                       watched_items = excluded.watched_items, due_next_hour = excluded.due_next_hour,
                       due_next_day = excluded.due_next_day, scans_issued = excluded.scans_issued,
                       daily_equivalent = excluded.daily_equivalent, as_of = excluded.as_of
                   RETURNING *"""
                , now,
            )  # fmt: skip
            await connection.execute("DELETE FROM rescan_outbox WHERE emitted_at < $1", now - keep_sent)
            return rows
