"""The local stack: broker, Postgres and Redis (yours if they answer, else embedded) and the four services."""

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from services.ops.devstack.broker import kafka_reachable
from services.ops.devstack.brokers import TANSU, BrokerChoice, RunningBroker, running_broker
from services.ops.devstack.errors import ExternalUnreachable, LaunchFailed, PortInUse, ServiceExited
from services.ops.devstack.ports import LOOPBACK, free_port, port_is_free
from services.ops.devstack.postgres import running_postgres
from services.ops.devstack.redis import running_redis
from services.ops.devstack.supervisor import SERVICE_NAMES, ServiceExit, Supervisor, service_command
from sluice.client.kafka_auth import KafkaAuth

log = logging.getLogger("sluice.devstack")

INTAKE_READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class DevStack:
    """Where everything runs; `embedded` names the dependencies we started ourselves."""

    kafka: str
    broker: BrokerChoice | None
    """The broker we started; None when it is yours (KAFKA_BOOTSTRAP_SERVERS)."""
    broker_pids: tuple[int, ...]
    """The processes of the broker we started (none when it is yours)."""
    database_url: str
    redis_url: str
    intake_url: str
    env: dict[str, str]
    supervisor: Supervisor | None
    embedded: frozenset[str]


@contextmanager
def dev_stack(
    data_dir: Path,
    *,
    with_services: bool = True,
    intake_port: int = 8000,
    extra_env: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    on_service_exit: Callable[[ServiceExit], None] | None = None,
    command_for: Callable[[str], list[str]] = service_command,
    service_output: TextIO | None = None,
    broker: BrokerChoice = TANSU,
) -> Iterator[DevStack]:
    """Start the stack, yield it, and stop it all (services first, then infrastructure), even on errors.

    KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and REDIS_URL in `environ` (default: os.environ) choose existing
    infrastructure; Postgres and Redis fall back to embedded servers if theirs do not answer. Without
    KAFKA_BOOTSTRAP_SERVERS, `broker` says which broker to start.
    Service output goes to `service_output` (default: stdout), each line prefixed with the service name.
    """
    environ = os.environ if environ is None else environ
    intake_port = intake_port or free_port()
    if with_services and not port_is_free(intake_port):
        raise PortInUse(intake_port, "intake REST API")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        running = stack.enter_context(
            _broker(environ.get("KAFKA_BOOTSTRAP_SERVERS"), KafkaAuth.from_env(environ), broker, data_dir)
        )
        kafka = running.bootstrap
        database_url = stack.enter_context(running_postgres(environ.get("DATABASE_URL"), data_dir / "postgres"))
        redis_url = stack.enter_context(running_redis(environ.get("REDIS_URL"), data_dir / "redis"))
        embedded = {
            "kafka": running.choice is not None,
            "postgres": database_url != environ.get("DATABASE_URL"),
            "redis": redis_url != environ.get("REDIS_URL"),
        }
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SLUICE_INTAKE_PORT": str(intake_port),
            **(running.choice.service_env() if running.choice else {}),
            **(extra_env or {}),
        }
        intake_url = f"http://{LOOPBACK}:{intake_port}"
        supervisor = None
        if with_services:
            supervisor = stack.enter_context(Supervisor(service_output, on_exit=on_service_exit))
            for name in SERVICE_NAMES:
                supervisor.start(name, command_for(name), env)
            wait_for_intake(intake_url, supervisor)
        yield DevStack(
            kafka=kafka,
            broker=running.choice,
            broker_pids=running.pids(),
            database_url=database_url,
            redis_url=redis_url,
            intake_url=intake_url,
            env=env,
            supervisor=supervisor,
            embedded=frozenset(name for name, started in embedded.items() if started),
        )


@dataclass(frozen=True)
class _Broker:
    bootstrap: str
    choice: BrokerChoice | None
    """None for a broker of yours."""
    started: RunningBroker | None

    def pids(self) -> tuple[int, ...]:
        return self.started.pids() if self.started else ()


@contextmanager
def _broker(bootstrap: str | None, auth: KafkaAuth, choice: BrokerChoice, data_dir: Path) -> Iterator[_Broker]:
    if bootstrap:
        if not kafka_reachable(bootstrap, auth=auth):
            raise ExternalUnreachable("Kafka (KAFKA_BOOTSTRAP_SERVERS)", bootstrap)
        log.info("using Kafka at %s", bootstrap)
        yield _Broker(bootstrap, None, None)
        return
    with running_broker(choice, data_dir) as running:
        yield _Broker(running.bootstrap, choice, running)


def wait_for_intake(intake_url: str, supervisor: Supervisor, timeout: float = INTAKE_READY_TIMEOUT_S) -> None:
    """Poll GET /healthz until 200; ServiceExited if any service dies first, LaunchFailed at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if exits := supervisor.exits:
            first = exits[0]
            raise ServiceExited(first.name, first.exit_code, log_tail=list(first.log_tail))
        if _healthy(f"{intake_url}/healthz"):
            return
        if time.monotonic() >= deadline:
            detail = f"GET {intake_url}/healthz did not answer 200 within {timeout:g}s"
            raise LaunchFailed("intake", detail, log_tail=supervisor.tail("intake"))
        time.sleep(0.1)  # poll interval inside the deadline


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
