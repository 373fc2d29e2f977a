"""Apache Kafka for development and tests: KRaft nodes (broker and controller in one JVM) on loopback ports."""

import base64
import json
import logging
import os
import secrets
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from services.ops.devstack.errors import DataDirMismatch, PortInUse
from services.ops.devstack.kafka.cluster import ClientAccess, KafkaCluster, NodeProcess
from services.ops.devstack.kafka.jars import (
    KAFKA_VERSION,
    class_archive,
    class_archive_options,
    java_binary,
    kafka_classpath,
    run_java_tool,
)
from services.ops.devstack.kafka.security import (
    ADMIN_USER,
    KafkaSecurity,
    TlsFiles,
    admin_client_properties,
    make_certificates,
    scram_format_arguments,
    secured_listener_properties,
)
from services.ops.devstack.ports import LOOPBACK, can_listen_on, free_port

log = logging.getLogger("sluice.devstack")

START_TIMEOUT_S = 90.0
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError")
"""For brokers on a small box shared with other processes: a single-threaded GC and only the quick (C1) compiler,
plus the class archive the first run records (see recording_classes), start a node in about half the time of the
JVM's defaults and with less memory (docs/performance.md); the optimising compiler gained a Python producer
little. The heap fits because log.cleaner.dedupe.buffer.size is cut from 128 MiB (with the default buffer the log
cleaner runs out of heap at start)."""
LOG4J2_PROPERTIES = """\
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""
"""Kafka's own INFO lines, without the 300-line dump of every config each client and server prints."""


@dataclass(frozen=True)
class NodeLayout:
    """Where one node listens: clients, other brokers, and the controller quorum; its metadata directory id."""

    node_id: int
    client_port: int
    internal_port: int
    controller_port: int
    directory_id: str


@dataclass(frozen=True)
class ClusterLayout:
    """What must stay the same for a cluster to restart on its data: ids, ports and internal passwords."""

    cluster_id: str
    nodes: tuple[NodeLayout, ...]
    secured: bool
    admin_password: str
    broker_password: str


@contextmanager
def running_kafka(
    data_dir: Path,
    *,
    nodes: int = 1,
    security: KafkaSecurity | None = None,
    version: str = KAFKA_VERSION,
    cache_dir: Path | None = None,
    jvm_options: Sequence[str] = JVM_OPTIONS,
    start_timeout: float = START_TIMEOUT_S,
) -> Iterator[KafkaCluster]:
    """Run a KRaft cluster of `nodes` processes on data_dir until the block ends; yields the KafkaCluster.

    The first run formats data_dir (ids, ports and internal passwords go to data_dir/cluster.json, certificates
    to data_dir/tls); later runs start the same cluster on the same ports, with its topics, data and users.
    """
    java, classpath = java_binary(), kafka_classpath(version, cache_dir)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    tls = make_certificates(data_dir / "tls") if security else None
    layout = prepared_layout(data_dir, nodes, security, tls, java=java, classpath=classpath)
    archive, archive_draft = class_archive(classpath), data_dir / f"classes-{uuid.uuid4().hex}.jsa"
    argv_head = broker_argv_head(java, classpath, jvm_options, data_dir)
    processes = [node_process(data_dir, node, argv_head) for node in layout.nodes]
    if not archive.is_file():
        # The first node of the first run records the classes it loads, written when it exits, for later starts.
        processes[0] = recording_classes(processes[0], archive_draft)
    cluster = KafkaCluster(processes, client_access(data_dir, layout, tls), java=java, classpath=classpath)
    try:
        ensure_ports_free(layout)
        cluster.start(start_timeout)
        log.info("Kafka %s (%d node(s)) at %s, pids %s", version, nodes, cluster.bootstrap, cluster.pids())
        yield cluster
    finally:
        cluster.stop()
        if archive_draft.is_file():
            os.replace(archive_draft, archive)


def recording_classes(process: NodeProcess, archive: Path) -> NodeProcess:
    """The same node, made to write the classes it loaded to `archive` when it exits (JDK 17 dynamic AppCDS)."""
    java, *rest = process.argv
    return replace(process, argv=(java, f"-XX:ArchiveClassesAtExit={archive}", *rest))


def prepared_layout(
    data_dir: Path, nodes: int, security: KafkaSecurity | None, tls: TlsFiles | None, *, java: str, classpath: str
) -> ClusterLayout:
    """The cluster's layout with every node's server.properties written; a new data_dir is formatted first."""
    layout_path = data_dir / "cluster.json"
    saved = load_layout(layout_path, nodes=nodes, secured=security is not None)
    layout = saved or new_layout(nodes, secured=security is not None)
    for node in layout.nodes:
        write_properties(properties_path(data_dir, node), server_properties(layout, node, data_dir, tls))
    if saved is None:
        format_storage(java, classpath, layout, data_dir, security)
        save_layout(layout, layout_path)
    return layout


def broker_argv_head(java: str, classpath: str, jvm_options: Sequence[str], data_dir: Path) -> tuple[str, ...]:
    """The broker's command line up to its server.properties; writes the log4j2 configuration it names."""
    log4j_config = data_dir / "log4j2.properties"
    log4j_config.write_text(LOG4J2_PROPERTIES)
    options = (*jvm_options, *class_archive_options(classpath), f"-Dlog4j2.configurationFile={log4j_config}")
    return (java, *options, "-cp", classpath, "kafka.Kafka")


def client_access(data_dir: Path, layout: ClusterLayout, tls: TlsFiles | None) -> ClientAccess:
    """How clients log in as the super user; writes the Java client config that Kafka's tools read."""
    if tls is None:
        return ClientAccess()
    admin_config = data_dir / "admin-client.properties"
    write_properties(admin_config, admin_client_properties(layout.admin_password, tls.ca_file))
    return ClientAccess(tls.ca_file, layout.admin_password, admin_config)


def new_layout(nodes: int, *, secured: bool) -> ClusterLayout:
    """A fresh cluster: new ids, free loopback ports (three per node) and internal passwords."""
    if nodes < 1:
        raise ValueError(f"a cluster needs at least one node, not {nodes}")
    ports: list[int] = []
    while len(ports) < 3 * nodes:
        if (port := free_port()) not in ports:
            ports.append(port)
    node_layouts = tuple(
        NodeLayout(
            node_id,
            client_port=ports[3 * index],
            internal_port=ports[3 * index + 1],
            controller_port=ports[3 * index + 2],
            directory_id=kafka_uuid(),
        )
        for index, node_id in enumerate(range(1, nodes + 1))
    )
    passwords = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    return ClusterLayout(kafka_uuid(), node_layouts, secured, *passwords)


def kafka_uuid() -> str:
    """A random id in Kafka's Uuid text form (URL-safe base64 of 16 bytes, never starting with '-')."""
    while (text := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()).startswith("-"):
        pass  # Kafka's own generator skips these too: a leading '-' reads as a command-line option
    return text


def load_layout(path: Path, *, nodes: int, secured: bool) -> ClusterLayout | None:
    """The layout saved in data_dir, or None for a new data_dir; DataDirMismatch if it has another shape."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    layout = ClusterLayout(**{**saved, "nodes": tuple(NodeLayout(**node) for node in saved["nodes"])})
    if len(layout.nodes) != nodes:
        raise DataDirMismatch(str(path.parent), f"it holds a {len(layout.nodes)}-node cluster, not {nodes}")
    if layout.secured != secured:
        state = "secured" if layout.secured else "unsecured"
        raise DataDirMismatch(str(path.parent), f"it holds a {state} cluster")
    return layout


def save_layout(layout: ClusterLayout, path: Path) -> None:
    """Write the layout, readable only by us since it holds the internal passwords."""
    path.touch(mode=0o600)
    path.write_text(json.dumps(asdict(layout), indent=2))


def ensure_ports_free(layout: ClusterLayout) -> None:
    """PortInUse if a port the cluster is bound to is taken (a restart must get back the same ports)."""
    for node in layout.nodes:
        for port in (node.client_port, node.internal_port, node.controller_port):
            if not can_listen_on(port):
                raise PortInUse(port, f"Kafka node {node.node_id}")


def node_process(data_dir: Path, node: NodeLayout, argv_head: Sequence[str]) -> NodeProcess:
    """How to run one node: the JVM command line ending with its server.properties, logging beside it."""
    properties = properties_path(data_dir, node)
    argv = (*argv_head, str(properties))
    return NodeProcess(node.node_id, node.client_port, node.internal_port, argv, properties.parent / "kafka.log")


def properties_path(data_dir: Path, node: NodeLayout) -> Path:
    """The server.properties of one node, in its own folder."""
    return data_dir / f"node-{node.node_id}" / "server.properties"


def server_properties(layout: ClusterLayout, node: NodeLayout, data_dir: Path, tls: TlsFiles | None) -> dict[str, str]:
    """The complete configuration of one combined broker+controller node."""
    endpoint = f"{LOOPBACK}:{{}}".format
    listeners = (
        f"CLIENT://{endpoint(node.client_port)},INTERNAL://{endpoint(node.internal_port)},"
        f"CONTROLLER://{endpoint(node.controller_port)}"
    )
    properties = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.bootstrap.servers": ",".join(endpoint(other.controller_port) for other in layout.nodes),
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(properties_path(data_dir, node).parent / "data"),
        **test_broker_settings(len(layout.nodes)),
    }
    if tls is not None:
        properties.update(secured_listener_properties(layout.broker_password, tls))
    return properties


def test_broker_settings(node_count: int) -> dict[str, str]:
    """Broker settings for a small test cluster; each differs from Kafka's default for the reason given."""
    replicas, min_isr = str(node_count), str(min(2, node_count))
    return {
        "auto.create.topics.enable": "false",  # as in production, topics come from ensure_topics: a typo fails
        "offsets.topic.replication.factor": replicas,  # the default 3 cannot be met by one node
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",  # a new group's first member starts at once, not after 3 s
        "group.min.session.timeout.ms": "1000",  # the default 6 s refuses the test suite's 3 s consumer sessions
        "log.segment.bytes": str(16 * 2**20),  # retention works on whole segments; 1 GiB ones never roll in tests
        "log.cleaner.dedupe.buffer.size": str(8 * 2**20),  # the default 128 MiB would need a larger heap
        "broker.heartbeat.interval.ms": "500",  # a killed node is fenced, and its partitions move, after the
        "broker.session.timeout.ms": "3000",  # session timeout: 3 s here instead of 9 s
    }


def write_properties(path: Path, properties: dict[str, str]) -> None:
    """Write a Java .properties file (backslashes escaped), readable only by us: it may hold passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    lines = (f"{key}={value.replace(chr(92), chr(92) * 2)}" for key, value in properties.items())
    path.write_text("\n".join(lines) + "\n")


def format_storage(
    java: str, classpath: str, layout: ClusterLayout, data_dir: Path, security: KafkaSecurity | None
) -> None:
    """Format every node's log directory for one cluster (all nodes at once); users are created here."""
    voters = ",".join(f"{node.node_id}@{LOOPBACK}:{node.controller_port}:{node.directory_id}" for node in layout.nodes)
    users = {ADMIN_USER: layout.admin_password, **security.users} if security else {}
    common = ["--cluster-id", layout.cluster_id, "--initial-controllers", voters, *scram_format_arguments(users)]

    def format_node(node: NodeLayout) -> str:
        argv = ["kafka.tools.StorageTool", "format", "--config", str(properties_path(data_dir, node)), *common]
        return run_java_tool(f"formatting Kafka node {node.node_id}", java, classpath, argv)

    with ThreadPoolExecutor(max_workers=len(layout.nodes)) as pool:
        list(pool.map(format_node, layout.nodes))
    log.debug("formatted Kafka cluster %s in %s", layout.cluster_id, data_dir)
