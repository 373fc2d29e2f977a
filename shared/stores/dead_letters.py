"""DeadLetterStore: the index of the dead-letter topics, and redriving the failed items it lists.

The topics themselves cannot be listed reliably on every broker, so the aggregator indexes each dead
letter here once, by its (topic, partition, offset).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg
from pydantic import BaseModel, ConfigDict, JsonValue

from shared.kafka import SendWindow
from sluice.contracts.events import TaskBatch, utc_now
from sluice.contracts.headers import REDRIVE_HEADER

MAX_LIMIT = 10_000
"""On a redriven TaskBatch: the id of the dead letter it came from."""


@dataclass(frozen=True)
class NewDeadLetter:
    """One dead-letter message as read from its topic, ready to index."""

    topic: str
    partition: int
    offset: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    payload: dict[str, JsonValue] | None = None
    raw_excerpt: str | None = None
    job_id: UUID | None = None
    tenant: str | None = None
    kind: str | None = None
    item_index: int | None = None
    generation: int | None = None
    error_type: str | None = None
    attempts: int | None = None
    first_failure_at: datetime | None = None
    last_failure_at: datetime | None = None
    trace_id: str | None = None


class DeadLetter(BaseModel):
    """A dead letter as indexed; ``headers``, ``payload`` and ``raw_excerpt`` only when shown one by one."""

    model_config = ConfigDict(frozen=True)

    id: int
    topic: str
    partition: int
    offset: int
    job_id: UUID | None
    tenant: str | None
    kind: str | None
    item_index: int | None
    generation: int | None
    reason: str | None
    error_type: str | None
    attempts: int | None
    first_failure_at: datetime | None
    last_failure_at: datetime | None
    trace_id: str | None
    recorded_at: datetime
    redriven_at: datetime | None
    redrive_count: int
    headers: dict[str, str] | None = None
    payload: dict[str, JsonValue] | None = None
    raw_excerpt: str | None = None


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to list or redrive; every given field must match. ``error`` is a substring."""

    tenant: str | None = None
    job_id: UUID | None = None
    kind: str | None = None
    error: str | None = None
    ids: tuple[int, ...] = ()
    again: bool = False
    """Redrive those already redriven too."""


_SUMMARY = ", ".join(name for name in DeadLetter.model_fields if name not in ("headers", "payload", "raw_excerpt"))
_SUMMARY = _SUMMARY.replace("offset", '"offset"')
_INSERT_COLUMNS = [name for name in NewDeadLetter.__dataclass_fields__]
_INSERT = f"""INSERT INTO dead_letters ({", ".join(c if c != "offset" else '"offset"' for c in _INSERT_COLUMNS)})
    VALUES ({", ".join(f"${i}" for i in range(1, len(_INSERT_COLUMNS) + 1))})
    ON CONFLICT (topic, partition, "offset") DO NOTHING"""


def _where(flt: DeadLetterFilter, args: list[object]) -> str:
    """The WHERE clause for a filter; appends its parameters to ``args``."""
    clauses = ["true"]

    def param(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if flt.tenant is not None:
        clauses.append(f"tenant = {param(flt.tenant)}")
    if flt.job_id is not None:
        clauses.append(f"job_id = {param(flt.job_id)}")
    if flt.kind is not None:
        clauses.append(f"kind = {param(flt.kind)}")
    if flt.error:
        needle = param(flt.error.lower())
        clauses.append(f"(strpos(lower(reason), {needle}) > 0 OR strpos(lower(error_type), {needle}) > 0)")
    if flt.ids:
        clauses.append(f"id = ANY({param(list(flt.ids))}::bigint[])")
    return " AND ".join(clauses)


def redriven_batch(payload: dict[str, JsonValue], redrive_count: int) -> TaskBatch:
    """The dead letter's TaskBatch as a fresh message: a later generation, first attempt, no failure time.

    The generation also counts earlier redrives of the same dead letter, so redriving it again still
    produces a result that outranks the previous redrive's failure.
    """
    batch = TaskBatch.model_validate(payload)
    items = [
        item.model_copy(
            update={"generation": item.generation + 1 + redrive_count, "attempt": 1, "first_failed_at": None}
        )
        for item in batch.items
    ]
    return batch.model_copy(update={"event_id": uuid4(), "occurred_at": utc_now(), "items": items})


class DeadLetterStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def index(self, letters: Sequence[NewDeadLetter]) -> None:
        """Index dead letters; one already indexed at the same position is left as it is (redelivery)."""
        if not letters:
            return
        rows = [tuple(getattr(letter, column) for column in _INSERT_COLUMNS) for letter in letters]
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.executemany(_INSERT, rows)

    async def list(self, flt: DeadLetterFilter, *, limit: int = 100, after_id: int = 0) -> list[DeadLetter]:
        """Dead letters matching the filter in id order, after ``after_id`` (keyset pagination)."""
        args: list[object] = [after_id, min(max(limit, 1), MAX_LIMIT)]
        rows = await self._pool.fetch(
            f"SELECT {_SUMMARY} FROM dead_letters WHERE id > $1 AND {_where(flt, args)} ORDER BY id LIMIT $2", *args
        )
        return [DeadLetter.model_validate(dict(row)) for row in rows]

    async def get(self, letter_id: int, tenant: str | None = None) -> DeadLetter | None:
        """One dead letter with its headers and payload."""
        row = await self._pool.fetchrow(
            f"""SELECT {_SUMMARY}, headers, payload, raw_excerpt FROM dead_letters
                WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)""",
            letter_id, tenant,
        )  # fmt: skip
        return None if row is None else DeadLetter.model_validate(dict(row))

    async def redrive(self, flt: DeadLetterFilter, window: SendWindow, tasks_topic: str, *, limit: int = 1000) -> int:
        """Put matching dead-lettered items back on the tasks topic; returns how many.

        1. select the matching task dead letters (not yet redriven, unless ``again``);
        2. publish each one's item as a new TaskBatch (a later generation) and wait for every acknowledgement;
        3. mark them redriven. A crash between 2 and 3 redrives them again next time, which is harmless:
           the results store keeps one row per item and a success is never replaced.
        """
        args: list[object] = [min(max(limit, 1), MAX_LIMIT)]
        pending = "" if flt.again else "AND redriven_at IS NULL"
        rows = await self._pool.fetch(
            f"""SELECT id, job_id, payload, redrive_count FROM dead_letters
                WHERE payload->>'type' = 'task.batch' {pending} AND {_where(flt, args)} ORDER BY id LIMIT $1""",
            *args,
        )
        if not rows:
            return 0
        for row in rows:
            batch = redriven_batch(row["payload"], row["redrive_count"])
            await window.send(
                batch.model_dump_json().encode(),
                tasks_topic,
                key=f"{batch.job_id}:{batch.batch_index}".encode(),
                headers={REDRIVE_HEADER: str(row["id"])},
            )
        await window.flush()
        await self._pool.execute(
            """UPDATE dead_letters SET redriven_at = now(), redrive_count = redrive_count + 1
               WHERE id = ANY($1::bigint[])""",
            [row["id"] for row in rows],
        )
        return len(rows)
