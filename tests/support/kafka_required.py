"""Tests that run Apache Kafka themselves: where a tool it needs (Java 17+, Maven for the first fetch of its jars,
openssl for a secured cluster) is missing, they skip with the reason, or fail where SLUICE_REQUIRE_KAFKA=1 says
the run must exercise Kafka (the Apache Kafka pass of `make test`)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

from services.ops.devstack.errors import ToolMissing
from services.ops.devstack.kafka import kafka_classpath
from services.ops.devstack.kafka.jars import java_binary

REQUIRE_KAFKA_ENV = "SLUICE_REQUIRE_KAFKA"


def kafka_required() -> bool:
    """True where this run must run Apache Kafka, so a missing tool fails instead of skipping."""
    return os.environ.get(REQUIRE_KAFKA_ENV) == "1"


def kafka_unavailable(reason: str) -> NoReturn:
    """Skip the test with `reason`, or fail it where SLUICE_REQUIRE_KAFKA=1."""
    if kafka_required():
        pytest.fail(f"{reason} ({REQUIRE_KAFKA_ENV}=1)")
    pytest.skip(reason)


@contextmanager
def kafka_tools() -> Iterator[None]:
    """Within the block, a missing tool (JavaMissing, MavenMissing, OpensslMissing) skips or fails the test."""
    try:
        yield
    except ToolMissing as exc:
        kafka_unavailable(str(exc))


def kafka_jars() -> str:
    """Kafka's classpath (its jars fetched on first use) with a Java that runs it; else skip or fail."""
    try:
        java_binary()
        return kafka_classpath()
    except ToolMissing as exc:
        kafka_unavailable(str(exc))
