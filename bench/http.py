"""A lean HTTP/1.1 client for the latency scenario: keep-alive connections, each request written as prepared
bytes, each answer read by its Content-Length.

Everything runs on one box, so the load generator's CPU is taken from the system it measures: httpx spent
a large share of a core on the scenario's small requests. This spends a fraction of that per request.
"""

import asyncio
from collections import deque
from dataclasses import dataclass


class TransportFailed(ConnectionError):
    """The connection broke before a whole answer came back (the request may or may not have been handled)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class LeanClient:
    """POSTs JSON to one host over at most ``max_connections`` keep-alive connections, opened as needed."""

    def __init__(self, host: str, port: int, headers: dict[str, str], max_connections: int = 200) -> None:
        self._host, self._port = host, port
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in {"Host": f"{host}:{port}", **headers}.items())
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self._slots = asyncio.Semaphore(max_connections)

    async def post_json(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Answer:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"POST {path} HTTP/1.1\r\n{self._fixed}{extra}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self._slots:
            reader, writer = self._idle.popleft() if self._idle else await self._connect()
            try:
                writer.write(head + body)
                answer, keep = await _read_answer(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                writer.close()
                raise TransportFailed(f"{type(exc).__name__}: {exc}") from exc
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return answer

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.popleft()
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self._host, self._port)
        except OSError as exc:
            raise TransportFailed(f"{type(exc).__name__}: {exc}") from exc


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    """The status and body of one answer, and whether the connection may be used again."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
    else:
        body = bytearray(await reader.readexactly(int(headers.get("content-length", "0"))))
    return Answer(status, bytes(body)), headers.get("connection", "").lower() != "close"
