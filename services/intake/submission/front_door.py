"""The Kafka front door: JobRequested events from other systems take the same path as REST submissions."""

import logging

from aiokafka import ConsumerRecord

from services.intake.logic import Fingerprint, resolve_kind, validate_item, validate_options
from services.intake.runtime import IntakeRuntime
from services.intake.submission.accept import JobDraft
from services.intake.submission.item_json import encode_item
from services.intake.submission.limits import batch_size_for, check_items, check_priority
from shared.errors import InvalidJob, LimitExceeded, WaitingLineFull
from shared.kafka import SendWindow, error_headers
from sluice.contracts.events import JobRequested, RescanRequested, decode, job_requested, rescan_requested

log = logging.getLogger(__name__)


def decode_job_requested(raw: bytes | None) -> JobRequested:
    try:
        return decode(job_requested, raw, "JobRequested event")
    except ValueError as exc:
        if raw and b'"rescan.requested"' in raw:  # the scheduler's rescans take the same path
            try:
                return decode(rescan_requested, raw, "RescanRequested event")
            except ValueError as rescan_exc:
                raise InvalidJob(str(rescan_exc)) from rescan_exc
        raise InvalidJob(str(exc)) from exc


async def on_job_requested(rt: IntakeRuntime, record: ConsumerRecord) -> None:
    """Validate and accept one request; an invalid one, or one over the tenant's waiting line, goes to the
    rejected topic with the reason.

    A BrokerUnavailable propagates, so the message is redelivered rather than lost; a redelivered
    request is recognised by its job_id and not accepted twice.
    """
    settings = rt.settings
    try:
        request = decode_job_requested(record.value)
        if len(request.items) > settings.max_items_per_job:
            raise LimitExceeded("items", len(request.items), settings.max_items_per_job)
        plan = await rt.plans.plan_for(request.tenant)
        check_items(plan, len(request.items))
        check_priority(plan, request.priority)
        kind = resolve_kind(rt.kinds, request.kind)
        options = validate_options(kind, request.options)
        items = [validate_item(kind, i, item, settings.max_item_bytes) for i, item in enumerate(request.items)]
    except InvalidJob as exc:
        await _reject(rt, record, exc.reason)
        return
    fingerprint = Fingerprint(kind.name, options, request.priority, request.callback_url)
    for item in items:
        fingerprint.add_item(item)
    draft = JobDraft(
        job_id=request.job_id, tenant=request.tenant, kind=kind.name, options=options, priority=request.priority,
        callback_url=request.callback_url, source="rescan" if isinstance(request, RescanRequested) else "kafka",
        idempotency_key=None,
        fingerprint=fingerprint.hexdigest(), total_items=len(items),
        batch_size=batch_size_for(plan, settings.batch_size, kind.batch_size),
    )  # fmt: skip
    try:
        acceptance = await rt.acceptor.accept(draft, lambda: map(encode_item, items))
    except WaitingLineFull as exc:
        # Set aside rather than redelivered: waiting here for a slot would hold up every tenant on the partition.
        await _reject(rt, record, str(exc))
        return
    log.info("accepted job %s from the requests topic (%d items)", acceptance.job.job_id, len(items))


async def _reject(rt: IntakeRuntime, record: ConsumerRecord, reason: str) -> None:
    """Put a request on the rejected topic with the reason in a header."""
    log.warning("rejected a job request at %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
    window = SendWindow(rt.broker, 1, rt.settings.publish_stall_timeout_s)
    await window.send(
        record.value or b"", rt.settings.kafka.topics.rejected, key=record.key,
        headers=error_headers(reason, record.topic),
    )  # fmt: skip
    await window.flush()
