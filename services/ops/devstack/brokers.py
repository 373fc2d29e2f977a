"""Which Kafka-protocol broker the local stack runs: Tansu (memory only, no Java) or Apache Kafka (from Maven
Central, data on disk, one node or a KRaft cluster)."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.ops.devstack.broker import running_tansu
from services.ops.devstack.kafka import KafkaCluster, running_kafka
from services.ops.devstack.process import process_listening_on

log = logging.getLogger("sluice.devstack")

BrokerKind = Literal["tansu", "kafka"]
CLUSTER_REPLICATION = {"SLUICE_KAFKA_REPLICATION_FACTOR": "3", "SLUICE_KAFKA_MIN_INSYNC_REPLICAS": "2"}
"""Topic settings on a cluster of three or more: every partition on three brokers, a write acknowledged by two."""


@dataclass(frozen=True)
class BrokerChoice:
    """The broker to start: Tansu (one process) or Apache Kafka with ``nodes`` combined broker+controller nodes."""

    kind: BrokerKind = "tansu"
    nodes: int = 1

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"a broker needs at least one node, not {self.nodes}")
        if self.kind == "tansu" and self.nodes != 1:
            raise ValueError("Tansu runs one node; --brokers needs --broker kafka")

    @property
    def name(self) -> str:
        """How reports name it: "tansu" or "apache-kafka"."""
        return "apache-kafka" if self.kind == "kafka" else "tansu"

    def service_env(self) -> dict[str, str]:
        """Settings the services need on this broker (replicated topics on a cluster)."""
        return dict(CLUSTER_REPLICATION) if self.nodes >= 3 else {}


TANSU = BrokerChoice()


@dataclass(frozen=True)
class RunningBroker:
    """A started broker: where clients connect, and the cluster's handles when it is Apache Kafka."""

    choice: BrokerChoice
    bootstrap: str
    cluster: KafkaCluster | None = None

    def pids(self) -> tuple[int, ...]:
        """The broker's processes now (a stopped node has none)."""
        if self.cluster is not None:
            return tuple(pid for pid in self.cluster.pids() if pid)
        return (process_listening_on(int(self.bootstrap.rsplit(":", 1)[1])).pid,)


@contextmanager
def running_broker(choice: BrokerChoice, data_dir: Path) -> Iterator[RunningBroker]:
    """Start the chosen broker until the block ends. Apache Kafka keeps its data in data_dir/kafka-<n>, so the
    next start with the same data_dir finds its topics again; Tansu keeps nothing."""
    if choice.kind == "tansu":
        with running_tansu(log_path=data_dir / "tansu.log") as address:
            yield RunningBroker(choice, address)
        return
    with running_kafka(data_dir / f"kafka-{choice.nodes}", nodes=choice.nodes) as cluster:
        yield RunningBroker(choice, cluster.bootstrap, cluster)
