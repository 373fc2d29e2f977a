"""What every user-facing subcommand shares: connection options, the client, and how output is written."""

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from sluice.cli.config import CliConfig, load
from sluice.client import SluiceClient
from sluice.errors import SluiceError

T = TypeVar("T")


def connection_options() -> argparse.ArgumentParser:
    """A parent parser: --url, --api-key, --kafka, --topic-prefix, --json."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection (flags beat SLUICE_* variables, which beat the config file)")
    group.add_argument("--url", help="intake's base URL (SLUICE_URL; default http://127.0.0.1:8000)")
    group.add_argument("--api-key", help="API key, sent as a Bearer token (SLUICE_API_KEY)")
    group.add_argument("--kafka", help="broker bootstrap servers (KAFKA_BOOTSTRAP_SERVERS)")
    group.add_argument("--topic-prefix", help="topic name prefix (SLUICE_KAFKA_TOPIC_PREFIX; default sluice)")
    group.add_argument("--database-url", help="PostgreSQL URL, for rebuild (DATABASE_URL)")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return common


def config(args: argparse.Namespace) -> CliConfig:
    flags = {
        "url": args.url, "api_key": args.api_key, "kafka_bootstrap_servers": args.kafka,
        "topic_prefix": args.topic_prefix, "database_url": args.database_url,
    }  # fmt: skip
    return load(flags, os.environ)


def client(args: argparse.Namespace) -> SluiceClient:
    """The SDK's client for the command's URL and key, retrying as the SDK does by default."""
    cfg = config(args)
    return SluiceClient(cfg.url, api_key=cfg.api_key)


def say(text: str) -> None:
    sys.stdout.write(text + "\n")


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


class UsageError(SluiceError):
    """The command cannot run as given: an unreadable input file, a missing key or extra, a topic that is not there."""


class KafkaTrouble(SluiceError):
    """A command that talks to Kafka could not: unreachable, an error, or no answer in time."""


def run_async(coroutine: Coroutine[Any, Any, T], kafka: str) -> T:
    """Run one async operator command; broker trouble becomes a one-line error, not a traceback."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its connection errors reach us as exceptions
    try:
        return asyncio.run(coroutine)
    except KafkaConnectionError as exc:
        raise KafkaTrouble(f"cannot reach Kafka at {kafka}: {exc}") from exc
    except KafkaError as exc:
        raise KafkaTrouble(f"Kafka error ({kafka}): {type(exc).__name__}: {exc}") from exc
    except TimeoutError as exc:
        raise KafkaTrouble(f"Kafka at {kafka} did not answer in time") from exc
