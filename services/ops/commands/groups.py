"""`sluice groups rewind`: move a consumer group's committed offsets to an offset, a time, or the start."""

import argparse
from datetime import datetime

from aiokafka import AIOKafkaConsumer

from services.ops.commands.kafka import kafka_connection
from services.ops.commands.replay import topic_name
from services.ops.streams.errors import OpsError
from services.ops.streams.positions import partitions_of, running
from services.ops.streams.rewind import offsets_at_time, rewind_group, uniform_offsets
from sluice.cli.common import config, connection_options, emit_json, run_async, say
from sluice.client.kafka_auth import KafkaConnection


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    groups = subparsers.add_parser("groups", help="consumer-group operations", description=__doc__)
    actions = groups.add_subparsers(dest="action", required=True, metavar="ACTION")
    rewind = actions.add_parser(
        "rewind",
        parents=[connection_options()],
        help="commit new offsets for a stopped group",
        description="Commit offsets for GROUP on TOPIC so it resumes from there. Stop the group's consumers "
        "first. --to-time finds, per partition, the first message at or after the time: the broker's "
        "ListOffsets by time where it answers correctly, else by reading timestamps.",
    )
    rewind.add_argument("group")
    rewind.add_argument("--topic", required=True, help="results, job-events, or a full topic name")
    where = rewind.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-offset", type=int, help="this offset in every chosen partition")
    where.add_argument("--to-time", type=datetime.fromisoformat, help="ISO 8601 time with offset")
    where.add_argument("--to-earliest", action="store_true", help="the start of every partition")
    rewind.add_argument("--partition", type=int, action="append", help="only this partition (repeat)")
    rewind.set_defaults(run=run_rewind)


async def _targets(kafka: KafkaConnection, topic: str, args: argparse.Namespace) -> dict[int, int]:
    if args.to_time is not None:
        if args.to_time.tzinfo is None:
            raise OpsError("--to-time needs a UTC offset, e.g. 2026-11-24T08:00:00+00:00")
        return await offsets_at_time(kafka, topic, args.to_time)
    consumer = AIOKafkaConsumer(**kafka.client_options(enable_auto_commit=False))
    async with running(consumer):
        partitions = await partitions_of(consumer, topic)
    if args.to_offset is not None and args.to_offset < 0:
        raise OpsError("--to-offset must be 0 or more")
    return uniform_offsets(partitions, 0 if args.to_earliest else args.to_offset)


async def _rewind(kafka: KafkaConnection, topic: str, args: argparse.Namespace) -> dict[int, int]:
    targets = await _targets(kafka, topic, args)
    if args.partition:
        targets = {partition: offset for partition, offset in targets.items() if partition in args.partition}
    return await rewind_group(kafka, args.group, topic, targets)


def run_rewind(args: argparse.Namespace) -> int:
    cfg = config(args)
    topic = topic_name(cfg.topic_prefix, args.topic)
    kafka = kafka_connection(args)
    committed = run_async(_rewind(kafka, topic, args), kafka.bootstrap_servers)
    if args.json:
        emit_json({"group": args.group, "topic": topic, "committed": committed})
    else:
        say(f"{args.group} on {topic} now at " + ", ".join(f"p{p}={o}" for p, o in sorted(committed.items())))
    return 0
