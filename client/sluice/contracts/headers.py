"""Every header name Sluice reads or writes: on Kafka messages, and over HTTP."""

# Kafka, on every message of a job: trace context carried across hops.
JOB_TRACE_HEADER = "sluice-job-traceparent"
"""The span that accepted the job; consumers link to it."""
SUBMITTED_AT_HEADER = "sluice-submitted-at"
"""Epoch ms the job was accepted, for the end-to-end latency metric."""
CARRIED_HEADERS = (JOB_TRACE_HEADER, SUBMITTED_AT_HEADER)
"""Headers a consumer copies from the message it handles onto the messages it publishes for the same job."""

# Kafka, on task batches.
DUE_AT_HEADER = "x-sluice-due-at"
"""On a retry message: epoch milliseconds before which it must not run."""
CANCELLED_HEADER = "x-sluice-cancelled"
"""On a task batch the dispatcher releases after its job was cancelled: processors skip it without asking Redis."""
REDRIVE_HEADER = "x-sluice-redrive-of"
"""On a redriven task batch: the id of the dead letter it came from."""
REPLAYED_FROM_HEADER = "x-sluice-replayed-from"
"""On a replayed message: ``topic/partition/offset`` it was copied from."""

# Kafka, on rejected and dead-lettered messages.
REASON_HEADER = "x-sluice-reason"
ERROR_TYPE_HEADER = "x-sluice-error-type"
ATTEMPTS_HEADER = "x-sluice-attempts"
FIRST_FAILURE_HEADER = "x-sluice-first-failure-at"
LAST_FAILURE_HEADER = "x-sluice-last-failure-at"
TRACE_ID_HEADER = "x-sluice-trace-id"
SOURCE_TOPIC_HEADER = "x-sluice-source-topic"
KIND_HEADER = "x-sluice-kind"
JOB_ID_HEADER = "x-sluice-job-id"
TENANT_HEADER = "x-sluice-tenant"

# HTTP.
IDEMPOTENCY_KEY = "Idempotency-Key"
"""On POST /v1/jobs: a retried submission with the same key is accepted once."""
IDEMPOTENCY_KEY_MAX = 255
SIGNATURE_HEADER = "X-Sluice-Signature"
EVENT_HEADER = "X-Sluice-Event"
DELIVERY_HEADER = "X-Sluice-Delivery"
