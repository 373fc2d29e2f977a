"""BacklogStore: the dispatcher's SQL over task_backlog (what is queued, in flight, released) and the
aggregator's credit return. Everything is batch-level and bulk: one statement per tick, never one per item."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from sluice.contracts.events import TERMINAL_STATUSES, Priority

BACKLOG_CHANNEL = "sluice_backlog"
"""NOTIFY channel on which a transaction that changes what the dispatcher could release (batches added,
credit returned) wakes it when it commits."""


async def signal_backlog_changed(connection: asyncpg.Connection) -> None:
    """Wake the dispatcher when the current transaction commits (PostgreSQL folds repeats into one)."""
    await connection.execute("SELECT pg_notify($1, '')", BACKLOG_CHANNEL)


@dataclass(frozen=True)
class BacklogCounts:
    queued: dict[tuple[str, Priority, str], int]
    """Unreleased, unheld batches per (tenant, priority, kind)."""
    in_flight: dict[tuple[str, str], int]
    """Released batches whose results are not recorded yet, per (tenant, kind)."""
    partition_load: dict[tuple[Priority, int], int] = field(default_factory=dict)
    """The same batches per (priority, the partition they were released to)."""


@dataclass(frozen=True)
class ReleasedBatch:
    job_id: UUID
    batch_index: int
    payload: bytes
    priority: Priority = Priority.NORMAL
    headers: bytes = b"{}"
    """The Kafka headers to publish it with, as a JSON object."""


async def return_credits(connection: asyncpg.Connection, batches: Sequence[tuple[UUID, int]]) -> None:
    """Inside the aggregator's write transaction: the batches' results are recorded, so they leave the
    backlog (their in-flight credit returns, and the dispatcher is woken on commit). A batch released twice,
    or not marked released yet, goes too."""
    if batches:
        await connection.execute(
            """WITH returned AS (
                   DELETE FROM task_backlog b USING unnest($1::uuid[], $2::int[]) AS r(job_id, batch_index)
                   WHERE b.job_id = r.job_id AND b.batch_index = r.batch_index)
               SELECT pg_notify($3, '')""",
            [job_id for job_id, _ in batches], [index for _, index in batches], BACKLOG_CHANNEL,
        )  # fmt: skip


class BacklogStore:
    """Used by the dispatcher on its own connection (the one holding the leader lock)."""

    async def counts(self, connection: asyncpg.Connection) -> BacklogCounts:
        rows = await connection.fetch(
            """SELECT tenant, priority, kind, released_at IS NOT NULL AS released, released_partition, count(*) AS n
               FROM task_backlog WHERE NOT held GROUP BY 1, 2, 3, 4, 5"""
        )
        queued: dict[tuple[str, Priority, str], int] = {}
        in_flight: dict[tuple[str, str], int] = {}
        partition_load: dict[tuple[Priority, int], int] = {}
        for row in rows:
            if row["released"]:
                key = (row["tenant"], row["kind"])
                in_flight[key] = in_flight.get(key, 0) + row["n"]
                if (partition := row["released_partition"]) is not None:
                    at = (Priority(row["priority"]), partition)
                    partition_load[at] = partition_load.get(at, 0) + row["n"]
            else:
                queued[(row["tenant"], Priority(row["priority"]), row["kind"])] = row["n"]
        return BacklogCounts(queued, in_flight, partition_load)

    async def take(
        self, connection: asyncpg.Connection, grants: Sequence[tuple[tuple[str, Priority, str], int]]
    ) -> list[ReleasedBatch]:
        """The first ``n`` unreleased batches of each granted queue, interleaved across queues in grant order
        (so one tenant's batches do not sit in a block on the topic). Not yet marked released."""
        rows = await connection.fetch(
            """SELECT b.job_id, b.batch_index, b.payload, b.headers, q.priority
               FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])
                    WITH ORDINALITY AS q(tenant, priority, kind, n, ord)
               CROSS JOIN LATERAL (
                   SELECT t.job_id, t.batch_index, t.payload, t.headers, row_number() OVER (ORDER BY t.seq) AS rank
                   FROM (SELECT job_id, batch_index, payload, headers, seq FROM task_backlog
                         WHERE tenant = q.tenant AND priority = q.priority AND kind = q.kind
                           AND released_at IS NULL AND NOT held
                         ORDER BY seq LIMIT q.n) t) b
               ORDER BY b.rank, q.ord""",
            [key[0] for key, _ in grants], [key[1].value for key, _ in grants],
            [key[2] for key, _ in grants], [n for _, n in grants],
        )  # fmt: skip
        return [
            ReleasedBatch(row["job_id"], row["batch_index"], row["payload"], Priority(row["priority"]), row["headers"])
            for row in rows
        ]

    async def take_cancelled(self, connection: asyncpg.Connection, limit: int) -> list[ReleasedBatch]:
        """Unreleased batches of cancelled jobs (held or not): processors turn them into cancelled results at
        once, so they go out ahead of fair share instead of queueing behind their tenant's cap."""
        rows = await connection.fetch(
            """SELECT b.job_id, b.batch_index, b.payload, b.headers
               FROM task_backlog b JOIN jobs j ON j.job_id = b.job_id
               WHERE b.released_at IS NULL AND j.status = 'cancelled' ORDER BY b.seq LIMIT $1""",
            limit,
        )
        return [
            ReleasedBatch(row["job_id"], row["batch_index"], row["payload"], headers=row["headers"]) for row in rows
        ]

    async def mark_released(
        self, connection: asyncpg.Connection, batches: Sequence[ReleasedBatch], partitions: Sequence[int | None]
    ) -> None:
        """Stamp the batches released, each with the partition it was sent to (``partitions``, in order)."""
        await connection.execute(
            # SKIP LOCKED: a row the aggregator is deleting is done already; never wait on (or deadlock with) it.
            """UPDATE task_backlog t SET released_at = now(), released_partition = r.partition
               FROM unnest($1::uuid[], $2::int[], $3::int[]) AS r(job_id, batch_index, partition)
               WHERE t.job_id = r.job_id AND t.batch_index = r.batch_index AND (t.job_id, t.batch_index) IN (
                   SELECT b.job_id, b.batch_index FROM task_backlog b
                   JOIN unnest($1::uuid[], $2::int[]) AS q(job_id, batch_index)
                     ON b.job_id = q.job_id AND b.batch_index = q.batch_index
                   FOR UPDATE OF b SKIP LOCKED)""",
            [batch.job_id for batch in batches], [batch.batch_index for batch in batches], list(partitions),
        )  # fmt: skip

    async def unhold(self, connection: asyncpg.Connection) -> int:
        """Batches of jobs no longer waiting (admitted, or cancelled while waiting) become releasable."""
        result = await connection.execute(
            """UPDATE task_backlog SET held = false WHERE (job_id, batch_index) IN (
                   SELECT b.job_id, b.batch_index FROM task_backlog b JOIN jobs j ON j.job_id = b.job_id
                   WHERE b.held AND j.status <> 'waiting' FOR UPDATE OF b SKIP LOCKED)"""
        )
        return int(result.split()[-1])

    async def drop_finished(self, connection: asyncpg.Connection) -> int:
        """Batches of jobs that have every result (e.g. ended by their deadline) are never needed again."""
        result = await connection.execute(
            """DELETE FROM task_backlog WHERE (job_id, batch_index) IN (
                   SELECT b.job_id, b.batch_index FROM task_backlog b JOIN jobs j ON j.job_id = b.job_id
                   WHERE j.status = ANY($1::text[])
                     AND j.succeeded + j.failed + j.cancelled + j.timed_out >= j.total_items
                   FOR UPDATE OF b SKIP LOCKED)""",
            TERMINAL_STATUSES,
        )
        return int(result.split()[-1])
