"""WatchStore: a tenant's watches and their items (created, listed, paused, changed, deleted through intake)."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from pydantic import JsonValue

INSERT_CHUNK = 5000
MAX_PAGE = 1000


@dataclass(frozen=True)
class WatchConfig:
    """How a watch is rescanned (validated by intake; durations in seconds)."""

    mode: str
    interval_s: float | None = None
    min_interval_s: float | None = None
    max_interval_s: float | None = None
    cron: str | None = None
    sample_fraction: float = 0.1
    change_threshold: float = 0.05
    sample_timeout_s: float = 3600.0
    debounce_s: float = 10.0
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewWatch:
    watch_id: UUID
    tenant: str
    kind: str
    options: dict[str, JsonValue]
    priority: str
    config: WatchConfig
    source_job_id: UUID | None


@dataclass(frozen=True)
class WatchRecord:
    watch_id: UUID
    tenant: str
    kind: str
    priority: str
    config: WatchConfig
    paused: bool
    source_job_id: UUID | None
    created_at: datetime
    items: int
    scans: int
    next_due: datetime | None
    escalations: int = 0
    last_sample: dict[str, JsonValue] | None = None


_CONFIG_COLUMNS = (
    "mode, interval_s, min_interval_s, max_interval_s, cron, sample_fraction, change_threshold, sample_timeout_s, "
    "debounce_s, tags"
)
_RECORD = f"""SELECT w.watch_id, w.tenant, w.kind, w.priority, w.paused, w.source_job_id, w.created_at,
                     w.escalations, w.last_sample,
                     {", ".join("w." + c.strip() for c in _CONFIG_COLUMNS.split(","))},
                     count(i.item_key) AS items, coalesce(sum(i.scans), 0)::bigint AS scans,
                     CASE WHEN w.mode = 'sampled' THEN w.next_due ELSE min(i.next_due) END AS next_due
              FROM watches w LEFT JOIN watched_items i USING (watch_id)"""


def _config(row: asyncpg.Record) -> WatchConfig:
    return WatchConfig(
        mode=row["mode"], interval_s=row["interval_s"], min_interval_s=row["min_interval_s"],
        max_interval_s=row["max_interval_s"], cron=row["cron"], sample_fraction=row["sample_fraction"],
        change_threshold=row["change_threshold"], sample_timeout_s=row["sample_timeout_s"],
        debounce_s=row["debounce_s"], tags=tuple(row["tags"]),
    )  # fmt: skip


def _record(row: asyncpg.Record) -> WatchRecord:
    return WatchRecord(
        watch_id=row["watch_id"], tenant=row["tenant"], kind=row["kind"], priority=row["priority"],
        config=_config(row), paused=row["paused"], source_job_id=row["source_job_id"], created_at=row["created_at"],
        items=row["items"], scans=row["scans"], next_due=row["next_due"], escalations=row["escalations"],
        last_sample=row["last_sample"],
    )  # fmt: skip


def _config_values(config: WatchConfig) -> tuple[object, ...]:
    return (
        config.mode, config.interval_s, config.min_interval_s, config.max_interval_s, config.cron,
        config.sample_fraction, config.change_threshold, config.sample_timeout_s, config.debounce_s,
        list(config.tags),
    )  # fmt: skip


class WatchStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, watch: NewWatch, items: Iterable[tuple[str, JsonValue]]) -> bool:
        """Create the watch with its (key, input) items; False if it already existed (a retried submit)."""
        async with self._pool.acquire() as connection, connection.transaction():
            created = await connection.fetchval(
                f"""INSERT INTO watches (watch_id, tenant, kind, options, priority, source_job_id, {_CONFIG_COLUMNS})
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                    ON CONFLICT (watch_id) DO NOTHING RETURNING true""",
                watch.watch_id, watch.tenant, watch.kind, watch.options, watch.priority, watch.source_job_id,
                *_config_values(watch.config),
            )  # fmt: skip
            if not created:
                return False
            chunk: list[tuple[str, JsonValue]] = []
            position = 0
            for key, value in items:
                chunk.append((key, value))
                if len(chunk) == INSERT_CHUNK:
                    await self._insert_items(connection, watch.watch_id, chunk, position)
                    position += len(chunk)
                    chunk = []
            if chunk:
                await self._insert_items(connection, watch.watch_id, chunk, position)
            return True

    @staticmethod
    async def _insert_items(
        connection: asyncpg.Connection, watch_id: UUID, chunk: list[tuple[str, JsonValue]], first: int
    ) -> None:
        await connection.execute(
            """INSERT INTO watched_items (watch_id, item_key, input, position)
               SELECT $1, k, i, p FROM unnest($2::text[], $3::jsonb[], $4::int[]) AS t(k, i, p)
               ON CONFLICT (watch_id, item_key) DO NOTHING""",
            watch_id, [key for key, _ in chunk], [value for _, value in chunk],
            list(range(first, first + len(chunk))),
        )  # fmt: skip

    async def get(self, tenant: str, watch_id: UUID) -> WatchRecord | None:
        row = await self._pool.fetchrow(
            f"{_RECORD} WHERE w.tenant = $1 AND w.watch_id = $2 GROUP BY w.watch_id", tenant, watch_id
        )
        return _record(row) if row else None

    async def page(self, tenant: str, after: UUID | None, limit: int) -> list[WatchRecord]:
        """Keyset page of the tenant's watches in watch_id order."""
        rows = await self._pool.fetch(
            f"""{_RECORD} WHERE w.tenant = $1 AND ($2::uuid IS NULL OR w.watch_id > $2)
                GROUP BY w.watch_id ORDER BY w.watch_id LIMIT $3""",
            tenant, after, min(limit, MAX_PAGE),
        )  # fmt: skip
        return [_record(row) for row in rows]

    async def set_paused(self, tenant: str, watch_id: UUID, paused: bool) -> bool:
        """Pause or resume; a resumed watch's items that fell due while paused are rescanned once."""
        done = await self._pool.fetchval(
            """UPDATE watches SET paused = $3, updated_at = now() WHERE tenant = $1 AND watch_id = $2
               RETURNING true""",
            tenant, watch_id, paused,
        )  # fmt: skip
        return bool(done)

    async def change(self, tenant: str, watch_id: UUID, config: WatchConfig) -> bool:
        """Replace how the watch is rescanned; its schedule starts again from the scheduler's next tick."""
        async with self._pool.acquire() as connection, connection.transaction():
            done = await connection.fetchval(
                f"""UPDATE watches SET ({_CONFIG_COLUMNS}) = ROW($3, $4, $5, $6, $7, $8, $9, $10, $11, $12),
                           next_due = NULL, sample_started_at = NULL, updated_at = now()
                    WHERE tenant = $1 AND watch_id = $2 RETURNING true""",
                tenant, watch_id, *_config_values(config),
            )  # fmt: skip
            if done:
                await connection.execute(
                    """UPDATE watched_items SET next_due = NULL, interval_s = NULL, in_sample = false
                       WHERE watch_id = $1""",
                    watch_id,
                )
            return bool(done)

    async def delete(self, tenant: str, watch_id: UUID) -> bool:
        done = await self._pool.fetchval(
            "DELETE FROM watches WHERE tenant = $1 AND watch_id = $2 RETURNING true", tenant, watch_id
        )
        return bool(done)

    async def items(self, tenant: str, watch_id: UUID, after: int, limit: int) -> list[dict[str, object]]:
        """Keyset page of a watch's items in submission order, with their schedule and last judged change."""
        rows = await self._pool.fetch(
            """SELECT i.position, i.item_key, i.input, i.next_due, i.interval_s, i.trigger_due, i.scans,
                      s.checks, s.changes, s.updated_at AS last_result_at
               FROM watched_items i JOIN watches w USING (watch_id)
               LEFT JOIN item_states s ON s.tenant = w.tenant AND s.kind = w.kind AND s.item_key = i.item_key
               WHERE w.tenant = $1 AND i.watch_id = $2 AND i.position > $3
               ORDER BY i.position LIMIT $4""",
            tenant, watch_id, after, min(limit, MAX_PAGE),
        )  # fmt: skip
        return [dict(row) for row in rows]

    async def rescans(self, tenant: str, watch_id: UUID, limit: int) -> list[dict[str, object]]:
        """The watch's most recent rescans (kept for a while after they were sent), newest first."""
        rows = await self._pool.fetch(
            """SELECT trigger_id AS job_id, reason, jsonb_array_length(items) AS items, decided_at, emitted_at
               FROM rescan_outbox WHERE tenant = $1 AND watch_id = $2
               ORDER BY decided_at DESC, trigger_id LIMIT $3""",
            tenant, watch_id, min(limit, MAX_PAGE),
        )  # fmt: skip
        return [dict(row) for row in rows]

    async def stats(self, tenant: str) -> asyncpg.Record | None:
        """The scheduler's last statistics for the tenant (computed on its clock)."""
        return await self._pool.fetchrow("SELECT * FROM watch_stats WHERE tenant = $1", tenant)
