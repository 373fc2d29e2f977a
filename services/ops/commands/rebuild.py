"""`sluice rebuild`: write the PostgreSQL read model (jobs, item_results) again from the retained topics."""

import argparse
from dataclasses import asdict

import asyncpg

from services.ops.commands.kafka import kafka_connection
from services.ops.streams.errors import OpsError
from services.ops.streams.rebuild import RebuildOutcome, rebuild
from shared.config import PostgresSettings
from shared.postgres import apply_migrations, open_pool
from sluice.cli.common import config, connection_options, emit_json, run_async, say
from sluice.client.kafka_auth import KafkaConnection
from sluice.contracts.topics import TopicNames


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rebuild",
        parents=[connection_options()],
        help="rebuild the jobs and item_results tables from the tasks and results topics",
        description="Into a database whose item_results table is empty (a new one, the schema dropped, the rows "
        "lost): "
        "creates the schema, a jobs row per job on the tasks topic and every result on the results topic, "
        "counted as the aggregator counts them. Reports the rows restored.",
    )
    parser.set_defaults(run=run_rebuild)


async def _rebuild(kafka: KafkaConnection, prefix: str, database_url: str) -> RebuildOutcome:
    pool = await open_pool(PostgresSettings(url=database_url))
    try:
        await apply_migrations(pool)
        return await rebuild(kafka, TopicNames.for_prefix(prefix), pool)
    except asyncpg.PostgresError as exc:
        raise OpsError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
    finally:
        await pool.close()


def run_rebuild(args: argparse.Namespace) -> int:
    cfg, kafka = config(args), kafka_connection(args)
    outcome = run_async(_rebuild(kafka, cfg.topic_prefix, cfg.database_url), kafka.bootstrap_servers)
    report = asdict(outcome) | {"unknown_jobs": sorted(str(job) for job in outcome.unknown_jobs)}
    if args.json:
        emit_json(report)
        return 0
    say(f"jobs restored: {outcome.jobs_created} new, {outcome.jobs_reset} reset")
    say(f"results restored: {outcome.results_restored} rows from {outcome.result_messages} messages")
    if outcome.results_of_unknown_jobs:
        say(f"not restored: {outcome.results_of_unknown_jobs} results of {len(outcome.unknown_jobs)} jobs whose "
            "task batches are no longer on the tasks topic")  # fmt: skip
    if outcome.undecodable:
        say(f"skipped: {outcome.undecodable} undecodable messages")
    return 0
