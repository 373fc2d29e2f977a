"""Webhook deliveries over the real database and real HTTP: enqueued once per event, refused targets and endless
errors end failed with every attempt on record."""

import asyncio
from uuid import UUID, uuid4

import asyncpg
import httpx

from services.aggregator.webhooks import WebhookDispatcher
from shared.config import WebhookSettings
from shared.stores.jobs import JobStore
from shared.stores.webhooks import TerminalEvent, WebhookStore
from tests.support.jobs import new_job
from tests.support.webhook_receiver import receiving_webhooks


async def _job_with_callback(db: asyncpg.Pool, url: str | None):
    job = new_job().model_copy(update={"callback_url": url})
    await JobStore(db).create(job)
    return job


async def _drain(dispatcher: WebhookDispatcher, store: WebhookStore, job_id: UUID, timeout: float = 20) -> None:
    """Send what is due, again and again, until none of the job's deliveries is pending any more."""
    async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(timeout):
        while any(d["status"] == "pending" for d in await store.for_job(job_id)):
            for delivery in await store.claim_due(10, lease_s=0):
                await dispatcher.deliver(client, delivery)
            await asyncio.sleep(0.005)  # poll interval inside the deadline: the next retry is due in ms


async def test_an_event_is_enqueued_once_and_only_for_a_job_with_a_callback_url(db: asyncpg.Pool) -> None:
    store = WebhookStore(db)
    with_callback = await _job_with_callback(db, "http://127.0.0.1:9/hook")
    without = await _job_with_callback(db, None)
    event = TerminalEvent(uuid4(), with_callback.job_id, "job.completed", {"n": 1})
    assert await store.enqueue([event, TerminalEvent(uuid4(), without.job_id, "job.completed", {"n": 2})]) == 1
    assert await store.enqueue([event]) == 0, "redelivered event"
    assert [(d["event_id"], d["event_type"]) for d in await store.for_job(with_callback.job_id)] == [
        (str(event.event_id), "job.completed")
    ]
    assert await store.for_job(without.job_id) == []


async def test_a_callback_to_a_non_public_address_is_refused_once_and_never_sent(db: asyncpg.Pool) -> None:
    store = WebhookStore(db)
    with receiving_webhooks(answers=[]) as hooks:
        job = await _job_with_callback(db, hooks.url)
        await store.enqueue([TerminalEvent(uuid4(), job.job_id, "job.completed", {"n": 1})])
        dispatcher = WebhookDispatcher(store, WebhookSettings(secret="k", base_delay_s=0.001))
        await _drain(dispatcher, store, job.job_id)
        assert hooks.received() == []
    [delivery] = await store.for_job(job.job_id)
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert delivery["last_error"].startswith("refused: 127.0.0.1 resolves to non-public")


async def test_a_callback_that_keeps_failing_ends_failed_after_max_attempts(db: asyncpg.Pool) -> None:
    store = WebhookStore(db)
    with receiving_webhooks(answers=[500] * 10) as hooks:
        job = await _job_with_callback(db, hooks.url)
        await store.enqueue([TerminalEvent(uuid4(), job.job_id, "job.failed", {"n": 1})])
        settings = WebhookSettings(secret="k", max_attempts=3, base_delay_s=0.001, allow_networks=["127.0.0.0/8"])
        await _drain(WebhookDispatcher(store, settings), store, job.job_id)
        assert len(hooks.received()) == 3
    [delivery] = await store.for_job(job.job_id)
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 500, 500]


async def test_without_a_secret_nothing_is_sent_and_the_delivery_says_why(db: asyncpg.Pool) -> None:
    store = WebhookStore(db)
    with receiving_webhooks(answers=[]) as hooks:
        job = await _job_with_callback(db, hooks.url)
        await store.enqueue([TerminalEvent(uuid4(), job.job_id, "job.completed", {"n": 1})])
        await _drain(WebhookDispatcher(store, WebhookSettings(allow_networks=["127.0.0.0/8"])), store, job.job_id)
        assert hooks.received() == []
    [delivery] = await store.for_job(job.job_id)
    assert delivery["status"] == "failed" and "SLUICE_WEBHOOK_SECRET" in delivery["last_error"]
