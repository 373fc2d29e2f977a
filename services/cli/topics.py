"""`sluice topics`: every Sluice topic with its partitions, end offsets and each consumer group's lag."""

import argparse
from dataclasses import asdict

from aiokafka import AIOKafkaConsumer

from services.cli.common import config, connection_options, emit_json, run_async, say
from shared.config import KafkaSettings
from sluice.ops.errors import OpsError
from sluice.ops.groups import groups_by_topic
from sluice.ops.positions import committed_offsets, end_offsets, lag_by_partition, partitions_of, running


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "topics",
        parents=[connection_options()],
        help="partitions, end offsets and consumer-group lag of every topic",
        description="End offsets are the high watermarks fetch responses report and committed offsets come from "
        "OffsetFetch, so this works on brokers whose ListOffsets answers are wrong (Tansu).",
    )
    parser.add_argument("--group", action="append", default=[], help="also show this group's lag (repeat)")
    parser.add_argument("--topic", action="append", default=[], help="only these topics (repeat)")
    parser.set_defaults(run=run_topics)


async def topic_report(bootstrap: str, prefix: str, extra_groups: list[str], only: list[str]) -> list[dict]:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    report = []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    async with running(consumer):
        for topic, groups in groups_by_topic(kafka).items():
            if only and topic not in only:
                continue
            try:
                partitions = await partitions_of(consumer, topic)
            except OpsError:
                report.append({"topic": topic, "exists": False})
                continue
            ends = await end_offsets(consumer, partitions)
            entry = {"topic": topic, "exists": True, "partitions": len(partitions),
                     "written": sum(ends.values()), "groups": {}}  # fmt: skip
            for group in dict.fromkeys(groups + extra_groups):
                lags = lag_by_partition(ends, await committed_offsets(bootstrap, group, partitions))
                entry["groups"][group] = {
                    "lag": sum(p.lag for p in lags),
                    "partitions": [asdict(p) | {"lag": p.lag} for p in lags],
                }
            report.append(entry)
    return report


def run_topics(args: argparse.Namespace) -> int:
    cfg = config(args)
    report = run_async(
        topic_report(cfg.kafka_bootstrap_servers, cfg.topic_prefix, args.group, args.topic),
        cfg.kafka_bootstrap_servers,
    )
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
