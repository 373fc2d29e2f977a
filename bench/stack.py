"""The benchmark's stack: infrastructure from the usual env vars (else embedded), a fresh database and topic
prefix of its own, and the four services as processes."""

import asyncio
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from services.ops.devstack.brokers import BrokerChoice
from services.ops.devstack.ports import free_port
from services.ops.devstack.postgres import create_database, drop_database
from services.ops.devstack.stack import dev_stack, wait_for_intake
from services.ops.devstack.supervisor import Supervisor, service_command

SERVICES = ("intake", "processor", "aggregator", "scheduler")
TASK_PARTITIONS = 12
_ASSIGNED = re.compile(r"^\[(?P<label>[^\]]+)\] .* assigned to partitions: (?P<partitions>.*)$")
_PARTITION = re.compile(r"topic='(?P<topic>[^']+)', partition=(?P<partition>\d+)")


class AssignmentLog:
    """Service output to a file, remembering the partitions each process was last assigned on each topic (from
    FastStream's "assigned to partitions" lines), so a run can wait for a consumer group to settle."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], set[int]] = {}

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if match := _ASSIGNED.match(line):
                by_topic: dict[str, set[int]] = {}
                for part in _PARTITION.finditer(match["partitions"]):
                    by_topic.setdefault(part["topic"], set()).add(int(part["partition"]))
                with self._lock:
                    for topic, partitions in by_topic.items():
                        self._latest[(match["label"], topic)] = partitions
        return self._out.write(text)

    def flush(self) -> None:
        self._out.flush()

    def holders(self, topic: str) -> dict[str, set[int]]:
        """Each process's latest assignment on ``topic``."""
        with self._lock:
            return {label: set(parts) for (label, t), parts in self._latest.items() if t == topic}


@dataclass
class BenchStack:
    kafka: str
    database_url: str
    redis_url: str
    intake_url: str
    topic_prefix: str
    env: dict[str, str]
    supervisor: Supervisor
    output: AssignmentLog
    embedded: frozenset[str]
    broker: str
    """What reports call the broker: "tansu", "apache-kafka", or "yours" (KAFKA_BOOTSTRAP_SERVERS)."""
    broker_pids: tuple[int, ...]
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def redis_port(self) -> int:
        return int(self.redis_url.rsplit(":", 1)[1].split("/")[0])

    @property
    def processor_group(self) -> str:
        return self.env["SLUICE_PROCESSOR_GROUP_ID"]

    def start_service(self, name: str) -> str:
        count = self.labels.get(name, 0) + 1
        self.labels[name] = count
        label = name if count == 1 else f"{name}#{count}"
        self.supervisor.start(label, service_command(name), self.env)
        return label

    def stop_service(self, label: str) -> None:
        self.supervisor.stop_one(label)

    def pids(self) -> dict[str, int]:
        return self.supervisor.pids()

    async def settled(self, labels: list[str], timeout: float = 120.0) -> None:
        """Until the named processors split every task partition between them (the group has rebalanced)."""
        topic = f"{self.topic_prefix}.tasks"
        async with asyncio.timeout(timeout):
            while True:
                held = self.output.holders(topic)
                parts = [held.get(label, set()) for label in labels]
                if all(parts) and sum(map(len, parts)) == TASK_PARTITIONS == len(set().union(*parts)):
                    return
                await asyncio.sleep(0.1)  # poll interval inside the deadline


@contextmanager
def bench_stack(
    data_dir: Path, environ: Mapping[str, str], log_path: Path, batch_size: int, broker: BrokerChoice
) -> Iterator[BenchStack]:
    """Infrastructure (yours or embedded), a fresh database and prefix, and intake, processor, aggregator and
    scheduler started and answering; everything stopped and the database dropped afterwards. ``batch_size`` is
    intake's for kinds that declare none (bench.cpu)."""
    run_id = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        infra = stack.enter_context(dev_stack(data_dir, with_services=False, environ=environ, broker=broker))
        db_name = f"sluice_bench_{run_id}"
        database_url = asyncio.run(create_database(infra.database_url, db_name))
        stack.callback(lambda: asyncio.run(drop_database(infra.database_url, db_name)))
        out = stack.enter_context(log_path.open("w", encoding="utf-8"))
        output = AssignmentLog(out)
        supervisor = stack.enter_context(Supervisor(output, stop_timeout=15.0))  # type: ignore[arg-type]
        port = free_port()
        prefix = f"bench-{run_id}"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
            "DATABASE_URL": database_url,
            "REDIS_URL": infra.redis_url,
            "SLUICE_INTAKE_PORT": str(port),
            "SLUICE_KAFKA_TOPIC_PREFIX": prefix,
            "SLUICE_KAFKA_TASK_PARTITIONS": str(TASK_PARTITIONS),
            "SLUICE_INTAKE_BATCH_SIZE": str(batch_size),
            "SLUICE_PROCESSOR_GROUP_ID": f"bench-processor-{run_id}",
            "SLUICE_AGGREGATOR_GROUP_ID": f"bench-aggregator-{run_id}",
            "SLUICE_INTAKE_REQUESTS_GROUP_ID": f"bench-intake-{run_id}",
            "SLUICE_LOG_LEVEL": "INFO",
            **(infra.broker.service_env() if infra.broker else {}),
        }
        bench = BenchStack(
            kafka=infra.kafka,
            database_url=database_url,
            redis_url=infra.redis_url,
            intake_url=f"http://127.0.0.1:{port}",
            topic_prefix=prefix,
            env=env,
            supervisor=supervisor,
            output=output,
            embedded=infra.embedded,
            broker=infra.broker.name if infra.broker else "yours",
            broker_pids=infra.broker_pids,
        )
        for name in SERVICES:
            bench.start_service(name)
        wait_for_intake(bench.intake_url, supervisor)
        yield bench
