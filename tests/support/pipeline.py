"""Runs Sluice's services as real subprocesses for end-to-end tests, each run with its own topics and database."""

import os
import signal
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from services.ops.devstack.ports import free_port
from services.ops.devstack.supervisor import Supervisor, service_command
from sluice.contracts.events import TERMINAL_STATUSES
from sluice.contracts.topics import TopicNames
from tests.support.poll import eventually
from tests.support.tenants import issue_key_sync


class Pipeline:
    """intake + processor + aggregator (+ scheduler) against the suite's broker, Postgres and Redis."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.port = free_port()
        # Tests poll job status several times a second, over the default plan's rate; tests of the rate limit
        # give their tenants a plan of their own.
        self.env = {
            "SLUICE_PLAN_REQUESTS_PER_MINUTE": "1000000",
            **env,
            "SLUICE_INTAKE_PORT": str(self.port),
            "SLUICE_LOG_LEVEL": "INFO",
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("a", encoding="utf-8")
        self.supervisor = Supervisor(self._log, stop_timeout=15.0)
        self._generation: dict[str, int] = {}
        self._keys: dict[str, str] = {}

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def topics(self) -> TopicNames:
        """This run's topics (its own prefix)."""
        return TopicNames.for_prefix(self.env["SLUICE_KAFKA_TOPIC_PREFIX"])

    def start(self, services: Iterable[str] = ("intake", "processor", "aggregator")) -> "Pipeline":
        for name in services:
            self.start_service(name)
        self.wait_until_ready()
        return self

    def start_service(self, name: str, extra_env: Mapping[str, str] | None = None) -> str:
        """Start one more process of a service; returns the name it runs under (e.g. processor#2)."""
        generation = self._generation.get(name, 0) + 1
        self._generation[name] = generation
        label = name if generation == 1 else f"{name}#{generation}"
        self.supervisor.start(label, service_command(name), {**self.env, **(extra_env or {})})
        return label

    def kill(self, label: str, sig: signal.Signals = signal.SIGKILL) -> None:
        os.killpg(self.supervisor.pids()[label], sig)

    def wait_until_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.supervisor.exits:
                raise RuntimeError(f"a service exited during start-up: {self.supervisor.exits[0]}\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # poll interval inside the deadline
        raise TimeoutError(f"intake not ready within {timeout}s\n{self.logs()}")

    def client(self, tenant: str = "default") -> httpx.AsyncClient:
        """A client authenticated as the tenant (see `api_key`)."""
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key(tenant)}"}, timeout=60
        )

    def api_key(self, tenant: str = "default") -> str:
        """A key of the tenant, which is created in this run's database on first use."""
        if tenant not in self._keys:
            self._keys[tenant] = issue_key_sync(self.env["DATABASE_URL"], tenant)
        return self._keys[tenant]

    def forget_keys(self) -> None:
        """Drop the cached keys, e.g. after the database lost its tenants; the next client issues new ones."""
        self._keys.clear()

    def logs(self, lines: int = 60) -> str:
        self._log.flush()
        return "".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-lines:])

    def stop(self) -> None:
        self.supervisor.stop()
        self._log.close()


async def wait_for_status(
    client: httpx.AsyncClient,
    job_id: UUID | str,
    statuses: Collection[str] = TERMINAL_STATUSES,
    timeout: float = 120.0,
    *,
    appearing: bool = False,
) -> dict[str, Any]:
    """The job's status once it is one of ``statuses``; ``appearing``: the job may not exist yet (a request sent
    over Kafka exists once the front door has consumed it), so a 404 means "not yet" rather than failing."""

    async def probe() -> dict[str, Any] | None:
        response = await client.get(f"/v1/jobs/{job_id}")
        if appearing and response.status_code == 404:
            return None
        response.raise_for_status()
        body = response.json()
        return body if body["status"] in statuses else None

    return await eventually(probe, timeout=timeout, interval=0.2)
