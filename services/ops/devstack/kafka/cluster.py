"""A running Kafka cluster's nodes: start, stop and kill each one, find partition leaders, change ACLs."""

import logging
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from services.ops.devstack.blocking import run_in_fresh_loop
from services.ops.devstack.broker import answers_api_versions
from services.ops.devstack.kafka.jars import run_java_tool
from services.ops.devstack.kafka.security import ADMIN_USER, acl_arguments, client_ssl_context
from services.ops.devstack.ports import LOOPBACK
from services.ops.devstack.process import launched, signal_group, wait_until_ready

log = logging.getLogger("sluice.devstack")

STOP_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class NodeProcess:
    """How to run one node: its id, the ports to probe, its command line and its log file."""

    node_id: int
    client_port: int
    internal_port: int
    argv: tuple[str, ...]
    log_path: Path


@dataclass(frozen=True)
class ClientAccess:
    """How to reach a secured cluster as its super user; all None for a plaintext one."""

    ca_file: Path | None = None
    admin_password: str | None = None
    admin_config: Path | None = None


@dataclass(frozen=True)
class PartitionState:
    """Who leads a partition (-1: nobody), who holds it and who is in sync."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class KafkaNode:
    """One Kafka process (broker and controller); its ports and data stay the same across stop and start."""

    def __init__(self, process: NodeProcess, is_serving: Callable[["KafkaNode"], bool]) -> None:
        self.process = process
        self._is_serving = is_serving
        self._stack: ExitStack | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def node_id(self) -> int:
        """The node's broker and controller id."""
        return self.process.node_id

    @property
    def address(self) -> str:
        """The node's client listener, "127.0.0.1:PORT"."""
        return f"{LOOPBACK}:{self.process.client_port}"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until the cluster lists it as a broker again."""
        self.launch()
        try:
            self.wait_until_serving(timeout)
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        """Start the process without waiting for it; nothing happens if it is running."""
        if self.running:
            return
        self._release()
        stack = ExitStack()
        what = f"Kafka node {self.node_id}"
        self._proc = stack.enter_context(
            launched(what, self.process.argv, log_path=self.process.log_path, stop_timeout=STOP_TIMEOUT_S)
        )
        self._stack = stack

    def wait_until_serving(self, timeout: float) -> None:
        """Wait until the node answers ApiVersions and the cluster's metadata lists it; else LaunchFailed."""
        assert self._proc is not None, "launch() first"
        what = f"Kafka node {self.node_id}"
        ready = partial(self._is_serving, self)
        wait_until_ready(what, self._proc, ready, timeout=timeout, log_path=self.process.log_path)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: it hands its leaderships over first); SIGKILL after STOP_TIMEOUT_S."""
        self._release()

    def kill(self) -> None:
        """SIGKILL the process, as a crash or the OOM killer would: no controlled shutdown."""
        if self.running and self._proc is not None:
            signal_group(self._proc.pid, signal.SIGKILL)
        self._release()

    def request_stop(self) -> None:
        """Send SIGTERM without waiting, so several nodes shut down side by side."""
        if self.running and self._proc is not None:
            signal_group(self._proc.pid, signal.SIGTERM)

    def _release(self) -> None:
        if self._stack is not None:
            self._stack.close()  # launched() stops the process group and reaps it
            self._stack = None


class KafkaCluster:
    """A running cluster: the bootstrap address, its nodes, and what a client needs to connect."""

    def __init__(self, processes: Sequence[NodeProcess], access: ClientAccess, *, java: str, classpath: str) -> None:
        self.nodes = tuple(KafkaNode(process, self._is_serving) for process in processes)
        self.access, self._java, self._classpath = access, java, classpath

    @property
    def bootstrap(self) -> str:
        """Every node's client listener, "127.0.0.1:P1,127.0.0.1:P2,..."."""
        return ",".join(node.address for node in self.nodes)

    @property
    def secured(self) -> bool:
        """True if clients must use SASL_SSL."""
        return self.access.ca_file is not None

    def node(self, node_id: int) -> KafkaNode:
        """The node with this id."""
        return next(node for node in self.nodes if node.node_id == node_id)

    def pids(self) -> list[int | None]:
        """Each node's process id (None for a stopped node)."""
        return [node.pid for node in self.nodes]

    def client_options(self, user: str | None = None, password: str | None = None, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients; on a secured cluster, SCRAM-SHA-512 as `user` (default: admin)."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        if self.access.ca_file is not None:
            options |= {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": user or ADMIN_USER,
                "sasl_plain_password": password if user else self.access.admin_password,
                "ssl_context": client_ssl_context(self.access.ca_file),
            }
        return options | extra

    def start(self, timeout: float) -> None:
        """Launch every node at once (a quorum needs a majority), then wait until each serves."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_until_serving(max(deadline - time.monotonic(), 0.1))

    def stop(self) -> None:
        """Stop every node together: one by one, the last ones would wait on a quorum that has already gone."""
        for node in self.nodes:
            node.request_stop()
        for node in self.nodes:
            node.stop()

    def registered_brokers(self, via: str | None = None) -> set[int]:
        """Ids of the brokers the metadata lists now (unfenced ones), asking `via` or any node; empty on failure."""
        bootstrap = via or self.bootstrap
        try:
            described = run_in_fresh_loop(lambda: self._describe_cluster(bootstrap), timeout=PROBE_TIMEOUT_S)
        except Exception as exc:  # any client failure means "not serving yet"; the reason is logged
            log.debug("Kafka metadata from %s unavailable: %r", bootstrap, exc)
            return set()
        return {broker["node_id"] for broker in described["brokers"]}

    async def partition_state(self, topic: str, partition: int) -> PartitionState:
        """Leader, replicas and in-sync replicas of one partition, as the metadata says now."""
        async with self.admin_client() as admin:
            (described,) = await admin.describe_topics([topic])
        state = next((item for item in described["partitions"] if item["partition"] == partition), None)
        if state is None:  # a topic just created: its metadata does not list the partition yet
            return PartitionState(-1, (), ())
        return PartitionState(state["leader"], tuple(state["replicas"]), tuple(state["isr"]))

    async def leader_of(self, topic: str, partition: int) -> KafkaNode | None:
        """The node leading topic-partition now, or None while it has no leader."""
        leader = (await self.partition_state(topic, partition)).leader
        return self.node(leader) if leader >= 0 else None

    @asynccontextmanager
    async def admin_client(self, **extra: Any) -> AsyncIterator[AIOKafkaAdminClient]:
        """A started aiokafka admin client logged in as the super user, closed after the block."""
        admin = AIOKafkaAdminClient(**self.client_options(request_timeout_ms=int(PROBE_TIMEOUT_S * 1000), **extra))
        try:
            await admin.start()
            yield admin
        finally:
            await admin.close()

    def grant(self, principal: str, operations: Sequence[str], **resources: Any) -> None:
        """Allow principal ("User:alice") the operations on topics=, groups=, transactional_ids= or cluster=True."""
        if self.access.admin_config is None:
            raise ValueError("ACLs need a secured cluster: running_kafka(..., security=KafkaSecurity(...))")
        argv = ["org.apache.kafka.tools.AclCommand", "--bootstrap-server", self.bootstrap]
        argv += ["--command-config", str(self.access.admin_config), *acl_arguments(principal, operations, **resources)]
        run_java_tool(f"granting {principal} {'/'.join(operations)}", self._java, self._classpath, argv)

    async def _describe_cluster(self, bootstrap: str) -> dict[str, Any]:
        async with self.admin_client(bootstrap_servers=bootstrap) as admin:
            return await admin.describe_cluster()

    def _is_serving(self, node: KafkaNode) -> bool:
        """True once the node answers and its metadata lists every running node as a broker."""
        # Ask the node itself, once it answers at all: aiokafka logs an error for every bootstrap address it
        # cannot reach, and during a start most of them are not up yet.
        if not answers_api_versions(LOOPBACK, node.process.internal_port):
            return False
        running = {other.node_id for other in self.nodes if other.running}
        return running <= self.registered_brokers(via=node.address)
