"""`sluice replay`: re-publish recorded results or job events (a job, a time range, an offset range) to a topic."""

import argparse
from datetime import datetime
from uuid import UUID

from services.ops.commands.kafka import kafka_connection
from services.ops.streams.errors import OpsError
from services.ops.streams.replay import replay
from services.ops.streams.selection import Selection
from sluice.cli.common import config, connection_options, emit_json, run_async, say
from sluice.contracts.headers import REPLAYED_FROM_HEADER
from sluice.contracts.topics import TopicNames

SOURCES = ("results", "job-events")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        parents=[connection_options()],
        help="re-publish recorded results or job events to a topic",
        description="Read the retained SOURCE topic and publish the selected messages, as they were (key, value, "
        f"headers, plus {REPLAYED_FROM_HEADER}), to --to. Time ranges are matched against message timestamps.",
    )
    parser.add_argument("source", help="results, job-events, or a full topic name")
    parser.add_argument("--to", required=True, dest="target", help="the topic to publish to")
    add_selection_options(parser)
    parser.set_defaults(run=run_replay)


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", type=UUID, help="only this job's messages (their key)")
    parser.add_argument("--since", type=datetime.fromisoformat, help="from this time (ISO 8601 with offset)")
    parser.add_argument("--until", type=datetime.fromisoformat, help="before this time (ISO 8601 with offset)")
    parser.add_argument("--from-offset", type=int, help="from this offset in every chosen partition")
    parser.add_argument("--to-offset", type=int, help="up to (not including) this offset")
    parser.add_argument("--partition", type=int, action="append", help="only this partition (repeat)")


def selection(args: argparse.Namespace) -> Selection:
    return Selection(
        job_id=args.job, since=args.since, until=args.until, from_offset=args.from_offset, to_offset=args.to_offset,
        partitions=frozenset(args.partition) if args.partition else None,
    )  # fmt: skip


def topic_name(prefix: str, name: str) -> str:
    topics = TopicNames.for_prefix(prefix)
    return {"results": topics.results, "job-events": topics.job_events}.get(name, name)


def run_replay(args: argparse.Namespace) -> int:
    cfg = config(args)
    source = topic_name(cfg.topic_prefix, args.source)
    if source == args.target or topic_name(cfg.topic_prefix, args.target) == source:
        raise OpsError("--to must differ from the source topic (replaying a topic into itself never ends)")
    kafka = kafka_connection(args)
    outcome = run_async(replay(kafka, source, args.target, selection(args)), kafka.bootstrap_servers)
    if args.json:
        emit_json({"source": outcome.source, "target": outcome.target, "published": outcome.published})
    else:
        say(f"replayed {outcome.published} messages from {outcome.source} to {outcome.target}")
    return 0
