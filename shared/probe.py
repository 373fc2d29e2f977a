"""`python -m shared.probe kafka [postgres] [redis]`: exit 0 when each named dependency accepts a TCP connection.

The readiness probe of the services without an HTTP port (processor, aggregator, scheduler) in Kubernetes:
a worker that cannot reach its broker or database is shown not ready. Addresses come from the same
variables the services read.
"""

import socket
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from shared.config import KafkaSettings, PostgresSettings, RedisSettings

TIMEOUT_S = 3.0


def address_of(dependency: str, kafka: str, postgres: str, redis: str) -> tuple[str, int]:
    """Host and port of a dependency from its connection string (the first broker for Kafka)."""
    if dependency == "kafka":
        host, _, port = kafka.split(",")[0].strip().rpartition(":")
        return host.strip("[]"), int(port)
    url = urlsplit(postgres if dependency == "postgres" else redis)
    return url.hostname or "localhost", url.port or (5432 if dependency == "postgres" else 6379)


def main(argv: Sequence[str]) -> int:
    kafka, postgres, redis = KafkaSettings().bootstrap_servers, PostgresSettings().url, RedisSettings().url
    for dependency in argv or ["kafka"]:
        if dependency not in ("kafka", "postgres", "redis"):
            sys.stderr.write(f"unknown dependency {dependency!r}: kafka, postgres or redis\n")
            return 2
        host, port = address_of(dependency, kafka, postgres, redis)
        try:
            socket.create_connection((host, port), timeout=TIMEOUT_S).close()
        except OSError as exc:
            sys.stderr.write(f"{dependency} at {host}:{port} unreachable: {exc}\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
