"""The dev-stack launchers against real processes: each starts, serves, and leaves nothing running."""

import asyncio
import io
import socket
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.ops.devstack.broker import running_tansu
from services.ops.devstack.errors import ServiceExited
from services.ops.devstack.ports import free_port, port_accepts
from services.ops.devstack.postgres import postgres_reachable, running_postgres
from services.ops.devstack.redis import redis_reachable, running_redis
from services.ops.devstack.stack import dev_stack
from services.ops.devstack.supervisor import ServiceExit, Supervisor
from sluice.cli.__main__ import main as sluice

UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/sluice"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A scratch directory outside pytest's tmp tree, which pytest re-locks to 0700 whenever a run starts.

    As root the embedded PostgreSQL runs as another user, which must be able to traverse to its data.
    """
    with tempfile.TemporaryDirectory(prefix="sluice-devstack-test-") as scratch:
        yield Path(scratch)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(0.02)  # poll interval inside the deadline


def our_descendants() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True) if not _gone(child.pid)}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port.split("/", 1)[0])


async def test_tansu_round_trips_a_message_and_is_gone_after_exit() -> None:
    topic = f"devstack-{uuid.uuid4().hex}"
    before = our_descendants()
    with running_tansu() as address:
        broker_pids = our_descendants() - before
        admin = AIOKafkaAdminClient(bootstrap_servers=address)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=address)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"hello tansu", key=b"k", partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            consumer.seek(partition, 0)  # explicit: tansu's ListOffsets answers are unreliable
            message = await consumer.getone()
        finally:
            await consumer.stop()
    assert (message.key, message.value) == (b"k", b"hello tansu")
    assert len(broker_pids) == 1
    assert all(_gone(pid) for pid in broker_pids)
    assert not port_accepts(*host_port(address))


def test_embedded_postgres_starts_when_the_url_is_unreachable_and_stops_after(data_dir: Path) -> None:
    before = our_descendants()
    with running_postgres(UNREACHABLE_POSTGRES, data_dir / "postgres") as url:
        started = our_descendants() - before
        assert url != UNREACHABLE_POSTGRES
        assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/sluice")
        assert _fetch(url, "SELECT current_database() || ':' || (SELECT 6 * 7)") == "sluice:42"
        assert _fetch(url, "SHOW wal_init_zero") == "off"  # no commit waits while a WAL segment is zero-filled
        assert _fetch(url, "SHOW backend_flush_after") == "256kB"  # no big job's pages left dirty in the page cache
    assert started
    assert all(_gone(pid) for pid in started)
    assert not port_accepts(*host_port(url.removeprefix("postgresql://postgres@")))


def test_reachable_postgres_is_reused_with_its_database_created(data_dir: Path) -> None:
    if not postgres_reachable(LOCAL_POSTGRES):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    database = f"sluice_devstack_{uuid.uuid4().hex[:12]}"
    given = LOCAL_POSTGRES.rsplit("/", 1)[0] + f"/{database}"
    before = our_descendants()
    try:
        with running_postgres(given, data_dir / "postgres") as url:
            assert our_descendants() == before
            assert url == given
            assert _fetch(url, "SELECT current_database()") == database
    finally:
        _fetch(LOCAL_POSTGRES, f'DROP DATABASE IF EXISTS "{database}"')
    assert not (data_dir / "postgres").exists()


def test_embedded_redis_starts_when_the_url_is_unreachable_and_stops_after(data_dir: Path) -> None:
    before = our_descendants()
    with running_redis(UNREACHABLE_REDIS, data_dir / "redis") as url:
        started = our_descendants() - before
        assert url != UNREACHABLE_REDIS
        with redis.Redis.from_url(url) as client:
            client.set("devstack", "works")
            assert client.get("devstack") == b"works"
    assert len(started) == 1
    assert all(_gone(pid) for pid in started)
    assert not redis_reachable(url, timeout=0.5)


def test_reachable_redis_is_reused_without_a_new_process(data_dir: Path) -> None:
    if not redis_reachable(LOCAL_REDIS):
        pytest.skip("no Redis on 127.0.0.1:6379")
    before = our_descendants()
    with running_redis(LOCAL_REDIS, data_dir / "redis") as url:
        assert url == LOCAL_REDIS
        assert our_descendants() == before


def test_supervisor_relays_prefixed_lines_and_stop_leaves_no_process_behind() -> None:
    out = io.StringIO()
    parent_and_grandchild = textwrap.dedent(
        """
        import signal, subprocess, sys
        grandchild = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
        print("hello from", sys.argv[1], grandchild.pid, flush=True)
        signal.pause()
        """
    )
    with Supervisor(out) as supervisor:
        supervisor.start("alpha", [sys.executable, "-c", parent_and_grandchild, "alpha"], {})
        supervisor.start("beta", [sys.executable, "-c", parent_and_grandchild, "beta"], {})
        wait_until(lambda: out.getvalue().count("hello from") == 2)
        pids = set(supervisor.pids().values())
    lines = out.getvalue().splitlines()
    grandchildren = {int(line.rsplit(" ", 1)[1]) for line in lines if "hello from" in line}
    assert {line.split(" ", 1)[0] for line in lines} == {"[alpha]", "[beta]"}
    assert any(line.startswith("[alpha] hello from alpha ") for line in lines)
    assert any(line.startswith("[beta] hello from beta ") for line in lines)
    assert all(_gone(pid) for pid in pids | grandchildren)
    assert supervisor.exits == []


def test_supervisor_kills_a_child_that_ignores_sigterm() -> None:
    stubborn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); signal.pause()"
    out = io.StringIO()
    with Supervisor(out, stop_timeout=1.0) as supervisor:
        supervisor.start("stubborn", [sys.executable, "-c", stubborn], {})
        wait_until(lambda: "[stubborn] up" in out.getvalue())
        pid = supervisor.pids()["stubborn"]
    assert _gone(pid)


def test_supervisor_stops_one_service_and_keeps_the_others_without_calling_it_an_unexpected_exit() -> None:
    waiting = "import signal; print('up', flush=True); signal.pause()"
    out = io.StringIO()
    with Supervisor(out) as supervisor:
        supervisor.start("leaving", [sys.executable, "-c", waiting], {})
        supervisor.start("staying", [sys.executable, "-c", waiting], {})
        wait_until(lambda: out.getvalue().count(" up") == 2)
        pids = supervisor.pids()
        supervisor.stop_one("leaving")
        assert _gone(pids["leaving"])
        assert not _gone(pids["staying"])
        assert supervisor.exits == []
    assert _gone(pids["staying"])


def test_supervisor_reports_an_unexpected_exit_with_its_code() -> None:
    out = io.StringIO()
    noticed: list[ServiceExit] = []
    exited = threading.Event()

    def on_exit(exit_: ServiceExit) -> None:
        noticed.append(exit_)
        exited.set()

    with Supervisor(out, on_exit=on_exit) as supervisor:
        supervisor.start("quitter", [sys.executable, "-c", "print('giving up'); raise SystemExit(3)"], {})
        assert exited.wait(10)
    assert noticed == [ServiceExit("quitter", 3, ("giving up",))]
    assert supervisor.exits == noticed
    assert "[quitter] exited unexpectedly with code 3" in out.getvalue()


HEALTHZ_STAND_IN = textwrap.dedent(
    """
    import http.server, os
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", int(os.environ["SLUICE_INTAKE_PORT"])), Health)
    print("serving", os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"], flush=True)
    server.serve_forever()
    """
)
IDLE_STAND_IN = "import signal; print('idle', flush=True); signal.pause()"


def test_dev_stack_runs_services_on_embedded_infrastructure_and_stops_everything(data_dir: Path) -> None:
    environ = {"DATABASE_URL": UNREACHABLE_POSTGRES, "REDIS_URL": UNREACHABLE_REDIS}

    def stand_in(name: str) -> list[str]:
        return [sys.executable, "-c", HEALTHZ_STAND_IN if name == "intake" else IDLE_STAND_IN]

    before = our_descendants()
    with dev_stack(data_dir, intake_port=free_port(), environ=environ, command_for=stand_in) as stack:
        started = our_descendants() - before
        assert stack.embedded == {"kafka", "postgres", "redis"}
        assert stack.env["DATABASE_URL"] == stack.database_url != UNREACHABLE_POSTGRES
        assert _fetch(stack.database_url, "SELECT current_database()") == "sluice"
        assert stack.supervisor is not None
        assert set(stack.supervisor.pids()) == {"intake", "processor", "aggregator", "scheduler"}
        assert stack.supervisor.tail("intake") == [f"serving {stack.kafka} {stack.database_url}"]
    assert len(started) >= 7  # broker, postgres (and its workers), redis, four services
    assert all(_gone(pid) for pid in started)


def test_dev_stack_names_a_service_that_dies_during_start_up(data_dir: Path) -> None:
    environ = {"DATABASE_URL": UNREACHABLE_POSTGRES, "REDIS_URL": UNREACHABLE_REDIS}

    def stand_in(name: str) -> list[str]:
        failing = "import sys; print('no config', flush=True); sys.exit(4)"
        return [sys.executable, "-c", failing if name == "aggregator" else IDLE_STAND_IN]

    before = our_descendants()
    with pytest.raises(ServiceExited) as raised:
        with dev_stack(data_dir, intake_port=free_port(), environ=environ, command_for=stand_in):
            pass
    failure = raised.value
    assert (failure.name, failure.exit_code, failure.log_tail) == ("aggregator", 4, ["no config"])
    assert our_descendants() == before


def test_dev_up_reports_a_busy_port_without_a_traceback(
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        code = sluice(["dev", "up", "--port", str(port), "--data-dir", str(data_dir)])
    assert code == 2
    expected = f"sluice: port {port} for the intake REST API is already in use on 127.0.0.1\n"
    assert capsys.readouterr().err == expected


def _fetch(url: str, query: str) -> object:
    async def run() -> object:
        connection = await asyncpg.connect(url)
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    return asyncio.run(run())
