"""`sluice events tail`: follow the job-events topic (``<prefix>.job-events``) over Kafka, one line per event (JSON
lines with --json), until Ctrl-C or --max events. Needs the kafka extra: pip install 'sluice-client[kafka]'. Kafka's
security settings come from the usual KAFKA_* variables (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_USERNAME ...)."""

import argparse
import os
import sys
from typing import Any

from sluice.cli.common import UsageError, config, connection_options, run_async, say
from sluice.client.kafka_auth import KafkaAuth, KafkaConnection, explaining_refusals
from sluice.contracts.events import decode, job_event
from sluice.contracts.topics import TopicNames

INSTALL_KAFKA = "`sluice events tail` needs the kafka extra: pip install 'sluice-client[kafka]'"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    events = subparsers.add_parser("events", help="follow job events over Kafka (the kafka extra)", description=__doc__)
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = actions.add_parser(
        "tail", parents=[connection_options()], help="print job events as they are published",
        description="Print every event of <prefix>.job-events as it is published: progress, completion, failure, "
        "cancellation and item changes of every tenant's jobs (no consumer group: nothing is committed).",
    )  # fmt: skip
    tail.add_argument("--job", help="only this job's events")
    tail.add_argument("--tenant", help="only this tenant's events")
    tail.add_argument("--from-beginning", action="store_true", help="start with the oldest event kept, not the next")
    tail.add_argument("--max", type=int, metavar="N", help="stop after N events")
    tail.set_defaults(run=run_tail)


def render(event: Any) -> str:
    """One line for a job event: when, what, which job and tenant, then what the event says."""
    head = f"{event.occurred_at.isoformat()} {event.type} job {event.job_id} tenant {event.tenant}"
    if event.type == "items.changed":
        return f"{head} kind {event.kind} changed {len(event.changed)} unchanged {event.unchanged} new {event.new}"
    counts = event.counts
    tally = f"{counts.done}/{counts.total} ok {counts.succeeded} failed {counts.failed}"
    if event.type == "job.progress":
        return f"{head} {event.percent:.1f}% ({tally})"
    if event.type == "job.completed":
        return f"{head} {event.status.value} ({tally} timed out {counts.timed_out} cancelled {counts.cancelled})"
    return f"{head} ({tally}): {event.reason}"  # job.failed, job.cancelled


def run_tail(args: argparse.Namespace) -> int:
    try:
        import aiokafka  # noqa: F401 -- only whether the kafka extra is installed
    except ImportError as exc:
        raise UsageError(INSTALL_KAFKA) from exc
    cfg = config(args)
    connection = KafkaConnection(bootstrap_servers=cfg.kafka_bootstrap_servers, auth=KafkaAuth.from_env(os.environ))
    topic = TopicNames.for_prefix(cfg.topic_prefix).job_events
    return run_async(tail(connection, topic, args), cfg.kafka_bootstrap_servers)


async def _partition_numbers(connection: KafkaConnection, topic: str) -> list[int]:
    """The topic's partitions as the cluster describes them now (none if it does not exist). A consumer's own
    metadata may not list a topic yet even when ``topics()`` does (seen on Apache Kafka)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**connection.client_options(client_id="sluice-events-tail"))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(partition["partition"] for partition in described.get("partitions") or ())


async def tail(connection: KafkaConnection, topic: str, args: argparse.Namespace) -> int:
    """Assign every partition of ``topic`` (no group), resolve the start positions, say so on stderr, then print
    events until ``args.max`` of them (or until cancelled)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **connection.client_options(client_id="sluice-events-tail", group_id=None, enable_auto_commit=False)
    )
    with explaining_refusals(connection.bootstrap_servers, connection.auth):
        await consumer.start()
    try:
        numbers = await _partition_numbers(connection, topic)
        if not numbers:
            raise UsageError(f"no topic {topic} on Kafka at {connection.bootstrap_servers}: is --topic-prefix right?")
        partitions = [TopicPartition(topic, number) for number in numbers]
        consumer.assign(partitions)
        await (consumer.seek_to_beginning if args.from_beginning else consumer.seek_to_end)(*partitions)
        for partition in partitions:
            await consumer.position(partition)  # resolved now: any event published from here on is printed
        start = "the oldest event kept" if args.from_beginning else "now"
        sys.stderr.write(f"following {topic} ({len(partitions)} partitions) from {start}; Ctrl-C stops\n")
        sys.stderr.flush()
        return await _print_events(consumer, args)
    finally:
        await consumer.stop()


async def _print_events(consumer: Any, args: argparse.Namespace) -> int:
    shown = 0
    while args.max is None or shown < args.max:
        fetched = await consumer.getmany(timeout_ms=1000, max_records=500)
        for records in fetched.values():
            for record in records:
                try:
                    event = decode(job_event, record.value, "job event")
                except ValueError as exc:
                    sys.stderr.write(f"sluice: skipped {record.topic}[{record.partition}]@{record.offset}: {exc}\n")
                    continue
                if (args.job and str(event.job_id) != args.job) or (args.tenant and event.tenant != args.tenant):
                    continue
                say(event.model_dump_json() if args.json else render(event))
                sys.stdout.flush()
                shown += 1
                if args.max is not None and shown >= args.max:
                    return 0
    return 0
