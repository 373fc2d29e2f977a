"""Webhooks, the aggregator's side: enqueue terminal job events durably, then send them signed, with backoff.

1. The job-events subscriber writes a delivery row per terminal event of a job with a callback_url; its offset is
   committed only after that insert, so no event is lost (a redelivery inserts nothing: event_id is unique).
2. The dispatcher leases due rows (SKIP LOCKED, so replicas share the work), POSTs each, and records the attempt:
   2xx → delivered; otherwise due again after base × 2^(n-1) (capped), or failed after max_attempts.
"""

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import orjson
from aiokafka import ConsumerRecord

from shared.config import WebhookSettings
from shared.kinds.web_page.guard import AllowList, addresses_to_judge
from shared.metrics import SluiceMetrics
from shared.stores.webhooks import DueDelivery, TerminalEvent, WebhookStore
from shared.webhooks import retry_delay_s
from shared.webhooks import signature as sign
from sluice.contracts.events import TERMINAL_EVENT_TYPES, decode, job_event
from sluice.contracts.headers import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER

log = logging.getLogger(__name__)
CLAIM_LIMIT = 20


class CallbackRefused(Exception):
    """The callback URL is not one a webhook may be sent to (scheme, or a non-public address)."""


@dataclass
class WebhookEnqueuer:
    store: WebhookStore

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Enqueue the poll's terminal events; an undecodable job event is logged and skipped (it is ours, from
        the aggregator itself, and the job's status in Postgres stays the truth)."""
        terminal = []
        for record in records:
            try:
                event = decode(job_event, record.value, "job event")
            except ValueError as exc:
                log.warning("skipped a job event at %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
                continue
            if event.type in TERMINAL_EVENT_TYPES:
                terminal.append(TerminalEvent(event.event_id, event.job_id, event.type, event.model_dump(mode="json")))
        await self.store.enqueue(terminal)


@dataclass
class WebhookDispatcher:
    store: WebhookStore
    settings: WebhookSettings
    metrics: SluiceMetrics | None = None

    def __post_init__(self) -> None:
        self._allow = AllowList.parse(self.settings.allow_networks)

    async def run_forever(self) -> None:
        async with httpx.AsyncClient(timeout=self.settings.timeout_s, follow_redirects=False) as client:
            while True:
                try:
                    due = await self.store.claim_due(CLAIM_LIMIT, self.settings.timeout_s + 30)
                    await asyncio.gather(*(self.deliver(client, delivery) for delivery in due))
                except Exception as exc:  # the next round retries; leased rows come due again after the lease
                    log.warning("webhook round failed, retrying in %.1fs: %s", self.settings.poll_interval_s, exc)
                    due = []
                if len(due) < CLAIM_LIMIT:
                    await asyncio.sleep(self.settings.poll_interval_s)

    async def deliver(self, client: httpx.AsyncClient, delivery: DueDelivery) -> None:
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        permanent = False  # a refused target or a missing secret: retrying cannot help
        try:
            if not self.settings.secret:
                raise CallbackRefused("not sent: SLUICE_WEBHOOK_SECRET is not set")
            await self._check_target(delivery.url)
            body = _body(delivery)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self.settings.secret, int(time.time()), body),
                EVENT_HEADER: delivery.event_type,
                DELIVERY_HEADER: str(delivery.event_id),
            }
            response = await client.post(delivery.url, content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except CallbackRefused as exc:
            error, permanent = str(exc), True
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        delivered = error is None
        attempt = delivery.attempts + 1
        retry_in = None
        if not delivered and not permanent and attempt < self.settings.max_attempts:
            retry_in = retry_delay_s(attempt, self.settings.base_delay_s, self.settings.max_delay_s)
        await self.store.record_attempt(
            delivery, status_code=status_code, error=error, duration_ms=(time.perf_counter() - started) * 1000,
            delivered=delivered, retry_in_s=retry_in,
        )  # fmt: skip
        outcome = "delivered" if delivered else ("retrying" if retry_in is not None else "failed")
        if self.metrics is not None:
            self.metrics.webhook_deliveries.add(1, {"outcome": outcome})
        if not delivered:
            log.warning("webhook %s for job %s attempt %d: %s (%s)", delivery.event_type, delivery.job_id, attempt,
                        error, outcome)  # fmt: skip

    async def _check_target(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CallbackRefused(f"refused: {url!r} is not an http(s) URL")
        if self._allow.permits_host(parts.hostname):
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {parts.hostname}: {exc}") from exc
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            for judged in addresses_to_judge(address):
                if not (judged.is_global or self._allow.permits_address(judged)):
                    raise CallbackRefused(f"refused: {parts.hostname} resolves to non-public {judged}")


def _body(delivery: DueDelivery) -> bytes:
    return orjson.dumps({"delivery_id": str(delivery.event_id), "event": delivery.payload})
