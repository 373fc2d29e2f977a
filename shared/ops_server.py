"""A tiny HTTP server for services without a web app: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process runs; ``/readyz`` answers 200 only when every dependency check passes
(503 with the failing ones named otherwise). Bound to loopback unless configured otherwise; port 0 means off.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import orjson

from shared.metrics import SluiceMetrics

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def run_checks(checks: Mapping[str, Check], timeout_s: float = 3.0) -> dict[str, str]:
    """Each dependency as "ok" or "down: <why>"; a check that hangs past ``timeout_s`` is down."""

    async def one(check: Check) -> str:
        try:
            async with asyncio.timeout(timeout_s):
                return "ok" if await check() else "down"
        except Exception as exc:  # reported, not raised: saying what is down is this endpoint's job
            return f"down: {type(exc).__name__}"

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


def _response(status: str, body: bytes, content_type: str) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    return head.encode() + b"\r\n" + body


async def _answer(path: str, metrics: SluiceMetrics, checks: Mapping[str, Check]) -> bytes:
    if path == "/metrics":
        return _response("200 OK", metrics.render(), PROMETHEUS_CONTENT_TYPE)
    if path == "/healthz":
        return _response("200 OK", b'{"status":"ok"}', "application/json")
    if path == "/readyz":
        results = await run_checks(checks)
        ready = all(value == "ok" for value in results.values())
        body = orjson.dumps({"ready": ready, "checks": results})
        return _response("200 OK" if ready else "503 Service Unavailable", body, "application/json")
    return _response("404 Not Found", b'{"detail":"not found"}', "application/json")


@contextlib.asynccontextmanager
async def serving_ops(
    host: str, port: int, metrics: SluiceMetrics, checks: Mapping[str, Check]
) -> AsyncIterator[int | None]:
    """Serve while the block runs; yields the bound port (None when ``port`` is 0, i.e. off)."""
    if port == 0:
        yield None
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers are not needed
                parts = request_line.decode("latin-1").split()
                path = parts[1].split("?")[0] if len(parts) >= 2 else "/"
                writer.write(await _answer(path, metrics, checks))
                await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            log.debug("ops request dropped: %s", exc)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()[1]
    log.info("metrics and health on http://%s:%d/metrics", host, bound)
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()
