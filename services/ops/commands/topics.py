"""`sluice topics`: every Sluice topic with its partitions, end offsets and each consumer group's lag."""

import argparse
import asyncio
from dataclasses import asdict

from aiokafka import AIOKafkaConsumer

from services.ops.commands.kafka import kafka_connection
from services.ops.streams.errors import OpsError
from services.ops.streams.groups import groups_by_topic
from services.ops.streams.positions import committed_offsets, end_offsets, lag_by_partition, partitions_of, running
from shared.config import KafkaSettings
from sluice.cli.common import config, connection_options, emit_json, run_async, say
from sluice.client.kafka_auth import KafkaConnection


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "topics",
        parents=[connection_options()],
        help="partitions, end offsets and consumer-group lag of every topic",
        description="End offsets and committed offsets come from the broker's ListOffsets and admin API where it "
        "answers them correctly (checked by trying), else from fetch responses' high watermarks and OffsetFetch, "
        "so this works on brokers whose ListOffsets answers are wrong (Tansu).",
    )
    parser.add_argument("--group", action="append", default=[], help="also show this group's lag (repeat)")
    parser.add_argument("--topic", action="append", default=[], help="only these topics (repeat)")
    parser.set_defaults(run=run_topics)


async def topic_report(kafka: KafkaConnection, prefix: str, extra_groups: list[str], only: list[str]) -> list[dict]:
    """Every Sluice topic (or those in ``only``) with its groups' lag, the topics looked at concurrently."""
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=prefix)
    chosen = [(topic, groups) for topic, groups in groups_by_topic(settings).items() if not only or topic in only]
    return list(await asyncio.gather(*(_topic_entry(kafka, t, [*g, *extra_groups]) for t, g in chosen)))


async def _topic_entry(kafka: KafkaConnection, topic: str, groups: list[str]) -> dict:
    # One consumer per topic: an assigned consumer refreshes metadata only for its own topics.
    async with running(AIOKafkaConsumer(**kafka.client_options(enable_auto_commit=False))) as consumer:
        try:
            partitions = await partitions_of(consumer, topic)
        except OpsError:
            return {"topic": topic, "exists": False}
        ends = await end_offsets(consumer, partitions)
    entry: dict = {"topic": topic, "exists": True, "partitions": len(partitions), "written": sum(ends.values())}
    entry["groups"] = {}
    for group in dict.fromkeys(groups):
        lags = lag_by_partition(ends, await committed_offsets(kafka, group, partitions))
        entry["groups"][group] = {
            "lag": sum(p.lag for p in lags),
            "partitions": [asdict(p) | {"lag": p.lag} for p in lags],
        }
    return entry


def run_topics(args: argparse.Namespace) -> int:
    cfg, kafka = config(args), kafka_connection(args)
    report = run_async(topic_report(kafka, cfg.topic_prefix, args.group, args.topic), kafka.bootstrap_servers)
    if args.json:
        emit_json(report)
        return 0
    say("topic\tpartitions\twritten\tgroup lag")
    for entry in report:
        if not entry["exists"]:
            say(f"{entry['topic']}\t(missing)")
            continue
        lags = ", ".join(f"{group}={info['lag']}" for group, info in entry["groups"].items()) or "-"
        say(f"{entry['topic']}\t{entry['partitions']}\t{entry['written']}\t{lags}")
    return 0
