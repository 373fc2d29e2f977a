"""RescanStore: the scheduler's side of watches: what is due, the outbox of decided rescans, triggers, statistics.

Every decision is one transaction that locks the rows it decides on with ``FOR UPDATE SKIP LOCKED``, writes
the rescan into ``rescan_outbox`` and moves the rows' schedule on, so two replicas never decide the same rescan:
the second skips rows the first holds and, once the first commits, no longer finds them due. Publishing the
outbox is a second step (see ``emit_pending``).
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
from pydantic import JsonValue

from shared.rescan_rules import (
    SampleTally,
    adaptive_interval,
    chunks,
    next_periodic_due,
    sample_decided,
    sample_size,
    should_escalate,
    starting_interval,
)


@dataclass(frozen=True)
class PendingRescan:
    """A decided rescan waiting in the outbox; its trigger id becomes the job id."""

    trigger_id: UUID
    watch_id: UUID
    tenant: str
    kind: str
    options: dict[str, JsonValue]
    priority: str
    reason: str
    items: list[JsonValue]


@dataclass(frozen=True)
class SampleDecision:
    watch_id: UUID
    tally: SampleTally
    escalated: bool


async def _enqueue(
    connection: asyncpg.Connection, watch_id: UUID, tenant: str, reason: str, inputs: Sequence[JsonValue],
    now: datetime, max_items: int,
) -> int:  # fmt: skip
    """Outbox rows for these items, at most max_items each; returns how many rows."""
    parts = list(chunks(list(inputs), max_items))
    if parts:
        await connection.executemany(
            """INSERT INTO rescan_outbox (trigger_id, watch_id, tenant, reason, items, decided_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [(uuid.uuid4(), watch_id, tenant, reason, list(part), now) for part in parts],
        )
    return len(parts)


def _group(rows: Sequence[asyncpg.Record]) -> dict[tuple[UUID, str, str], list[JsonValue]]:
    grouped: dict[tuple[UUID, str, str], list[JsonValue]] = {}
    for row in rows:
        grouped.setdefault((row["watch_id"], row["tenant"], row["mode"]), []).append(row["input"])
    return grouped


class RescanStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def plan_scheduled(self, now: datetime, limit: int, max_items: int) -> int:
        """Periodic and adaptive items: stamp new ones with their first due time; queue the due ones.

        Returns how many items it decided on (stamped or queued); fewer than ``limit`` means none is left.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                """SELECT i.watch_id, i.item_key, i.input, i.next_due, i.interval_s, i.seen_checks, i.seen_changes,
                          w.tenant, w.mode, w.interval_s AS every_s, w.cron, w.min_interval_s, w.max_interval_s,
                          coalesce(s.checks, 0) AS checks, coalesce(s.changes, 0) AS changes
                   FROM watched_items i JOIN watches w USING (watch_id)
                   LEFT JOIN item_states s ON s.tenant = w.tenant AND s.kind = w.kind AND s.item_key = i.item_key
                   WHERE w.mode IN ('periodic', 'adaptive') AND NOT w.paused
                     AND (i.next_due IS NULL OR i.next_due <= $1)
                   ORDER BY i.next_due NULLS FIRST LIMIT $2
                   FOR UPDATE OF i SKIP LOCKED""",
                now, limit,
            )  # fmt: skip
            if not rows:
                return 0
            updates, due = [], []
            for row in rows:
                interval = row["interval_s"]
                if row["mode"] == "adaptive":
                    low, high = row["min_interval_s"], row["max_interval_s"]
                    if row["next_due"] is None:
                        interval = starting_interval(low, high)
                    else:
                        interval = adaptive_interval(
                            interval, low, high,
                            new_checks=row["checks"] - row["seen_checks"],
                            new_changes=row["changes"] - row["seen_changes"],
                        )  # fmt: skip
                    next_due = now + timedelta(seconds=interval)
                else:
                    next_due = next_periodic_due(now, row["every_s"], row["cron"])
                emit = row["next_due"] is not None
                if emit:
                    due.append(row)
                # First stamp: seen stays at 0, so the first decision learns from the item's whole history
                # (at least the submitting job's result), whether or not that result is in yet.
                seen = (row["checks"], row["changes"]) if emit else (row["seen_checks"], row["seen_changes"])
                updates.append((row["watch_id"], row["item_key"], next_due, interval, *seen, emit))
            await connection.execute(
                """UPDATE watched_items i SET next_due = u.next_due, interval_s = u.interval_s,
                          seen_checks = u.checks, seen_changes = u.changes, scans = i.scans + u.emit::int,
                          watched_since = coalesce(i.watched_since, $8)
                   FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::float8[], $5::bigint[], $6::bigint[],
                               $7::bool[]) AS u(watch_id, item_key, next_due, interval_s, checks, changes, emit)
                   WHERE i.watch_id = u.watch_id AND i.item_key = u.item_key""",
                *(list(column) for column in zip(*updates, strict=True)), now,
            )  # fmt: skip
            for (watch_id, tenant, mode), inputs in _group(due).items():
                await _enqueue(connection, watch_id, tenant, mode, inputs, now, max_items)
            return len(rows)

    async def note_trigger(self, tenant: str, keys: Sequence[str], tags: Sequence[str], now: datetime) -> int:
        """An external trigger: the tenant's matching watched items fall due after their watch's debounce window.

        An item already waiting keeps its time, so a burst of triggers within the window makes one rescan.
        """
        result = await self._pool.execute(
            """UPDATE watched_items i
               SET trigger_due = coalesce(i.trigger_due, $4::timestamptz + w.debounce_s * interval '1 second')
               FROM watches w
               WHERE w.watch_id = i.watch_id AND w.tenant = $1 AND NOT w.paused
                 AND (i.item_key = ANY($2::text[]) OR w.tags && $3::text[])""",
            tenant, list(keys), list(tags), now,
        )  # fmt: skip
        return int(result.split()[-1])

    async def plan_triggered(self, now: datetime, limit: int, max_items: int) -> int:
        """Items whose debounced trigger is due: queue them (reason event).

        A planner takes whole watches (their rows locked, skipping those another planner holds), so two scheduler
        replicas never cut one watch's burst into two rescans.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            watch_ids = await connection.fetch(
                """SELECT w.watch_id FROM watches w
                   WHERE NOT w.paused
                     AND EXISTS (SELECT 1 FROM watched_items i WHERE i.watch_id = w.watch_id AND i.trigger_due <= $1)
                   LIMIT $2
                   FOR UPDATE OF w SKIP LOCKED""",
                now, limit,
            )  # fmt: skip
            if not watch_ids:
                return 0
            rows = await connection.fetch(
                """SELECT i.watch_id, i.item_key, i.input, w.tenant, 'event' AS mode
                   FROM watched_items i JOIN watches w USING (watch_id)
                   WHERE i.watch_id = ANY($3::uuid[]) AND i.trigger_due <= $1
                   ORDER BY i.trigger_due LIMIT $2
                   FOR UPDATE OF i""",
                now, limit, [row[0] for row in watch_ids],
            )  # fmt: skip
            if not rows:
                return 0
            await connection.execute(
                """UPDATE watched_items i SET trigger_due = NULL, scans = i.scans + 1,
                          watched_since = coalesce(i.watched_since, $3)
                   FROM unnest($1::uuid[], $2::text[]) AS u(watch_id, item_key)
                   WHERE i.watch_id = u.watch_id AND i.item_key = u.item_key""",
                [r["watch_id"] for r in rows], [r["item_key"] for r in rows], now,
            )  # fmt: skip
            for (watch_id, tenant, mode), inputs in _group(rows).items():
                await _enqueue(connection, watch_id, tenant, mode, inputs, now, max_items)
            return len(rows)

    async def stamp_watched_since(self, now: datetime) -> None:
        """Items of event and sampled watches start counting their watched time (for the savings statistic)."""
        await self._pool.execute("UPDATE watched_items SET watched_since = $1 WHERE watched_since IS NULL", now)

    async def start_samples(self, now: datetime, limit: int, max_items: int) -> int:
        """Sampled watches that are due: rescan a random sample of each group; returns how many samples started.

        A new watch is first stamped with its due time (its submitting job was the first scan).
        """
        started = 0
        async with self._pool.acquire() as connection, connection.transaction():
            watches = await connection.fetch(
                """SELECT watch_id, tenant, kind, next_due, interval_s, sample_fraction FROM watches
                   WHERE mode = 'sampled' AND NOT paused AND sample_started_at IS NULL
                     AND (next_due IS NULL OR next_due <= $1)
                   ORDER BY next_due NULLS FIRST LIMIT $2
                   FOR UPDATE SKIP LOCKED""",
                now, limit,
            )  # fmt: skip
            for watch in watches:
                if watch["next_due"] is None:
                    await connection.execute(
                        "UPDATE watches SET next_due = $2 WHERE watch_id = $1",
                        watch["watch_id"], next_periodic_due(now, watch["interval_s"], None),
                    )  # fmt: skip
                    continue
                group = await connection.fetchval(
                    "SELECT count(*) FROM watched_items WHERE watch_id = $1", watch["watch_id"]
                )
                picked = await connection.fetch(
                    """WITH picked AS (
                           SELECT item_key FROM watched_items WHERE watch_id = $1 ORDER BY random() LIMIT $2)
                       UPDATE watched_items i SET in_sample = true, scans = i.scans + 1,
                              seen_checks = coalesce(s.checks, 0), seen_changes = coalesce(s.changes, 0)
                       FROM picked p
                       LEFT JOIN item_states s ON s.tenant = $3 AND s.kind = $4 AND s.item_key = p.item_key
                       WHERE i.watch_id = $1 AND i.item_key = p.item_key
                       RETURNING i.input""",
                    watch["watch_id"], sample_size(group, watch["sample_fraction"]), watch["tenant"], watch["kind"],
                )  # fmt: skip
                await connection.execute(
                    "UPDATE watches SET sample_started_at = $2 WHERE watch_id = $1", watch["watch_id"], now
                )
                inputs = [row["input"] for row in picked]
                await _enqueue(connection, watch["watch_id"], watch["tenant"], "sample", inputs, now, max_items)
                started += 1
        return started

    async def decide_samples(self, now: datetime, limit: int, max_items: int) -> list[SampleDecision]:
        """Samples whose results are in (or timed out): escalate to the rest of the group when the change
        rate is over the threshold; either way the group is next due one interval from now."""
        decisions = []
        async with self._pool.acquire() as connection, connection.transaction():
            watches = await connection.fetch(
                """SELECT watch_id, tenant, kind, interval_s, change_threshold, sample_timeout_s, sample_started_at
                   FROM watches WHERE mode = 'sampled' AND sample_started_at IS NOT NULL
                   ORDER BY sample_started_at LIMIT $1
                   FOR UPDATE SKIP LOCKED""",
                limit,
            )
            for watch in watches:
                counts = await connection.fetchrow(
                    """SELECT count(*) AS sampled,
                              count(*) FILTER (WHERE coalesce(s.checks, 0) > i.seen_checks) AS reported,
                              count(*) FILTER (WHERE coalesce(s.changes, 0) > i.seen_changes) AS changed
                       FROM watched_items i
                       LEFT JOIN item_states s ON s.tenant = $2 AND s.kind = $3 AND s.item_key = i.item_key
                       WHERE i.watch_id = $1 AND i.in_sample""",
                    watch["watch_id"], watch["tenant"], watch["kind"],
                )  # fmt: skip
                tally = SampleTally(counts["sampled"], counts["reported"], counts["changed"])
                if not sample_decided(tally, watch["sample_started_at"], now, watch["sample_timeout_s"]):
                    continue
                escalated = should_escalate(tally, watch["change_threshold"])
                if escalated:
                    rest = await connection.fetch(
                        """UPDATE watched_items SET scans = scans + 1 WHERE watch_id = $1 AND NOT in_sample
                           RETURNING input, position""",
                        watch["watch_id"],
                    )
                    inputs = [row["input"] for row in sorted(rest, key=lambda r: r["position"])]
                    await _enqueue(connection, watch["watch_id"], watch["tenant"], "escalation", inputs, now, max_items)
                await connection.execute(
                    "UPDATE watched_items SET in_sample = false WHERE watch_id = $1 AND in_sample", watch["watch_id"]
                )
                await connection.execute(
                    """UPDATE watches SET sample_started_at = NULL, next_due = $2,
                              escalations = escalations + $3::int,
                              last_sample = jsonb_build_object('sampled', $4::int, 'reported', $5::int,
                                  'changed', $6::int, 'escalated', $3::bool, 'decided_at', $7::timestamptz)
                       WHERE watch_id = $1""",
                    watch["watch_id"], next_periodic_due(now, watch["interval_s"], None), escalated,
                    tally.sampled, tally.reported, tally.changed, now,
                )  # fmt: skip
                decisions.append(SampleDecision(watch["watch_id"], tally, escalated))
        return decisions

    async def emit_pending(
        self, publish: Callable[[list[PendingRescan]], Awaitable[None]], now: datetime, limit: int
    ) -> int:
        """Publish queued rescans, then mark them emitted, holding their rows locked in between.

        1. lock up to ``limit`` unemitted rows (another replica skips them);
        2. ``publish`` them and wait for the broker's acknowledgements (raising leaves them unemitted);
        3. mark them emitted and commit. A crash between 2 and 3 publishes them again later with the same
           trigger id, which intake accepts once (it is the job id).
        """
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                """SELECT o.trigger_id, o.watch_id, o.tenant, o.reason, o.items, w.kind, w.options, w.priority
                   FROM rescan_outbox o JOIN watches w USING (watch_id)
                   WHERE o.emitted_at IS NULL ORDER BY o.decided_at LIMIT $1
                   FOR UPDATE OF o SKIP LOCKED""",
                limit,
            )
            if not rows:
                return 0
            pending = [
                PendingRescan(r["trigger_id"], r["watch_id"], r["tenant"], r["kind"], r["options"], r["priority"],
                              r["reason"], r["items"])
                for r in rows
            ]  # fmt: skip
            await publish(pending)
            await connection.execute(
                "UPDATE rescan_outbox SET emitted_at = $2 WHERE trigger_id = ANY($1::uuid[])",
                [p.trigger_id for p in pending], now,
            )  # fmt: skip
            return len(pending)
