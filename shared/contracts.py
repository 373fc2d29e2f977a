"""The AsyncAPI document of every Sluice topic, generated from the event models and the topic names.

The services' own subscribers take raw messages (to route undecodable ones aside), so the schemas come
from here: one channel per topic, typed with the models in sluice/contracts/events.py, built on a broker that is
never connected. tests/unit/shared/test_contracts.py checks every topic of ``topic_specs`` is listed.
"""

from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared.config import KafkaSettings
from shared.kafka import retry_tiers
from sluice.contracts.events import (
    BatchProcessed,
    CancelJob,
    ItemsChanged,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgressed,
    JobRequested,
    RescanRequested,
    RescanTrigger,
    TaskBatch,
)


@dataclass(frozen=True)
class TopicContract:
    topic: str
    title: str
    messages: tuple[type, ...]
    description: str
    consumed_by_sluice: bool = False
    """True for topics other systems write and Sluice reads (an AsyncAPI ``receive`` operation)."""


def topic_contracts(settings: KafkaSettings) -> list[TopicContract]:
    t = settings.topics
    contracts = [
        TopicContract(t.requests, "job-requests", (JobRequested, RescanRequested),
                      "Other systems ask for a job, the scheduler for a rescan; intake validates it (key: any, the job "
                      "id is usual).", True),
        TopicContract(t.tasks, "tasks", (TaskBatch,),
                      "Intake's batches for the processors (key job_id:batch_index); redrives land here too."),
        TopicContract(t.tasks_high, "tasks-high", (TaskBatch,),
                      "High-priority batches, released ahead of the others and read by their own processor group, "
                      "so they never queue behind normal work on a partition."),
        TopicContract(t.results, "results", (BatchProcessed, CancelJob),
                      "One result message per task batch, and cancellations (key job_id); the aggregator's input."),
        TopicContract(t.job_events, "job-events", (JobProgressed, JobCompleted, JobFailed, JobCancelled, ItemsChanged),
                      "Job lifecycle for downstream systems (key job_id): throttled progress, items that changed "
                      "since their last scan, then one final event."),
        TopicContract(t.triggers, "triggers", (RescanTrigger,),
                      "Other systems say which entities changed (keys or tags); the scheduler rescans matching "
                      "watched items, debounced.", True),
        TopicContract(t.rejected, "rejected", (),
                      "Job requests that could not be decoded or accepted, as sent, reason in x-sluice-reason."),
        TopicContract(t.tasks_dlq, "tasks-dlq", (TaskBatch,),
                      "One one-item TaskBatch per item that ended failed (headers in shared/failures.py); "
                      "undecodable task messages as they came."),
        TopicContract(t.results_dlq, "results-dlq", (BatchProcessed,),
                      "Undecodable results and results of unknown jobs, with the reason in a header."),
    ]  # fmt: skip
    for tier in retry_tiers(settings):
        contracts.append(
            TopicContract(t.retry(tier), f"tasks-retry-{tier}s", (TaskBatch,),
                          f"Items waiting up to {tier} s for their next try; header x-sluice-due-at (epoch ms).")
        )  # fmt: skip
    return contracts


def _schema(messages: tuple[type, ...]) -> Any:
    if not messages:
        return bytes
    union = messages[0]
    for message in messages[1:]:
        union = union | message  # type: ignore[assignment]
    return union


def contract_broker(settings: KafkaSettings) -> KafkaBroker:
    """A never-connected broker declaring every topic: the source of the AsyncAPI document."""
    broker = KafkaBroker(settings.bootstrap_servers)
    for contract in topic_contracts(settings):
        if contract.consumed_by_sluice:
            subscriber = broker.subscriber(contract.topic, title=contract.title, description=contract.description)

            async def consume(body: JobRequested) -> None:  # only its signature is read, for the schema
                raise NotImplementedError

            subscriber(consume)
        else:
            broker.publisher(
                contract.topic, schema=_schema(contract.messages), title=contract.title,
                description=contract.description,
            )  # fmt: skip
    return broker


def asyncapi_document(settings: KafkaSettings, version: str = "1") -> AsyncAPI:
    return AsyncAPI(
        contract_broker(settings),
        title="Sluice topics",
        version=version,
        description="Every topic Sluice reads or writes and the JSON message each carries "
        "(sluice/contracts/events.py).",
    )


def asyncapi_json(settings: KafkaSettings) -> dict[str, Any]:
    return asyncapi_document(settings).to_specification().to_jsonable()
