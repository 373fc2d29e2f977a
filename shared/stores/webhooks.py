"""WebhookStore: the only code that knows the webhook_deliveries and webhook_attempts SQL."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import JsonValue


@dataclass(frozen=True)
class TerminalEvent:
    """A job's terminal event, to be delivered to the job's callback_url if it has one."""

    event_id: UUID
    job_id: UUID
    event_type: str
    payload: JsonValue


@dataclass(frozen=True)
class DueDelivery:
    delivery_id: int
    event_id: UUID
    job_id: UUID
    url: str
    event_type: str
    payload: JsonValue
    attempts: int


class WebhookStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def enqueue(self, events: Sequence[TerminalEvent]) -> int:
        """A delivery for each event's job that has a callback_url, once per event (one statement for a poll of
        events); returns how many were added (a redelivered event or a job without callback adds none)."""
        if not events:
            return 0
        status = await self._pool.execute(
            """INSERT INTO webhook_deliveries (event_id, job_id, url, event_type, payload)
               SELECT e.event_id, j.job_id, j.callback_url, e.event_type, e.payload
               FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[]) AS e(event_id, job_id, event_type, payload)
               JOIN jobs j ON j.job_id = e.job_id AND j.callback_url IS NOT NULL
               ON CONFLICT (event_id) DO NOTHING""",
            [e.event_id for e in events], [e.job_id for e in events], [e.event_type for e in events],
            [e.payload for e in events],
        )  # fmt: skip
        return int(status.split()[-1])

    async def claim_due(self, limit: int, lease_s: float) -> list[DueDelivery]:
        """Due deliveries, leased for ``lease_s`` so another aggregator replica does not send them meanwhile."""
        rows = await self._pool.fetch(
            """UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
               WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries
                                     WHERE status = 'pending' AND next_attempt_at <= now()
                                     ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING delivery_id, event_id, job_id, url, event_type, payload, attempts""",
            limit, lease_s,
        )  # fmt: skip
        return [DueDelivery(**dict(row)) for row in rows]

    async def record_attempt(
        self, delivery: DueDelivery, *, status_code: int | None, error: str | None, duration_ms: float,
        delivered: bool, retry_in_s: float | None,
    ) -> None:  # fmt: skip
        """One try: its attempt row, and the delivery delivered, due again in ``retry_in_s``, or failed (None)."""
        attempt = delivery.attempts + 1
        status = "delivered" if delivered else ("pending" if retry_in_s is not None else "failed")
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                delivery.delivery_id, attempt, status_code, error, duration_ms,
            )  # fmt: skip
            await connection.execute(
                """UPDATE webhook_deliveries SET attempts = $2, status = $3, last_error = $4,
                          delivered_at = CASE WHEN $3 = 'delivered' THEN now() END,
                          next_attempt_at = now() + make_interval(secs => $5)
                   WHERE delivery_id = $1""",
                delivery.delivery_id, attempt, status, error, retry_in_s or 0.0,
            )  # fmt: skip

    async def for_job(self, job_id: UUID) -> list[dict[str, Any]]:
        """The job's deliveries, each with its attempts, oldest first."""
        deliveries = await self._pool.fetch(
            """SELECT delivery_id, event_id, url, event_type, status, attempts, next_attempt_at, created_at,
                      delivered_at, last_error
               FROM webhook_deliveries WHERE job_id = $1 ORDER BY delivery_id""",
            job_id,
        )
        attempts = await self._pool.fetch(
            """SELECT a.delivery_id, a.attempt, a.attempted_at, a.status_code, a.error, a.duration_ms
               FROM webhook_attempts a JOIN webhook_deliveries d USING (delivery_id)
               WHERE d.job_id = $1 ORDER BY a.delivery_id, a.attempt""",
            job_id,
        )
        by_delivery: dict[int, list[dict[str, Any]]] = {}
        for row in attempts:
            by_delivery.setdefault(row["delivery_id"], []).append(
                {k: _json(v) for k, v in dict(row).items() if k != "delivery_id"}
            )
        return [
            {**{k: _json(v) for k, v in dict(row).items()}, "attempt_log": by_delivery.get(row["delivery_id"], [])}
            for row in deliveries
        ]


def _json(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value
