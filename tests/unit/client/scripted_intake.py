"""A real HTTP server on 127.0.0.1 answering from a script, for the client's and the CLI's unit tests: every request
is recorded, then answered by the test's ``route`` (JSON, an event stream that ends, drops or stays open, ...)."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOLD_LIMIT_S = 30.0
"""The longest a held event stream stays open (the test releases it sooner, or the server stops)."""


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[str] | None = None
    """An event stream: these blocks are written one by one (each ends with a blank line), then the stream ends."""
    hold: threading.Event | None = None
    """With ``events``: after them, keep the connection open until this is set (``intake.stopping``: until the
    server stops)."""


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


class ScriptedIntake:
    def __init__(self, route: Callable[[Seen], Reply]) -> None:
        self.route = route
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if (method is None or s.method == method) and (path is None or s.path == path)]

    def record(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
        return self.route(seen)

    @contextmanager
    def running(self) -> Iterator["ScriptedIntake"]:
        thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return bytes(body)
            body += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler(intake: ScriptedIntake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # a connection per request: an event stream ends when it closes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            split = urlsplit(self.path)
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = intake.record(Seen(self.command, split.path, parse_qs(split.query), headers, _read_body(self)))
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.events is not None:
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for block in reply.events:
                    self.wfile.write(block.encode())
                    self.wfile.flush()
                if reply.hold is not None:
                    reply.hold.wait(HOLD_LIMIT_S)
                return
            body = b"" if reply.json is None else json.dumps(reply.json).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer

    return Handler


def job_view(job_id: str, status: str = "running", done: int = 0, total: int = 4) -> dict[str, Any]:
    """A GET /v1/jobs/{id} answer."""
    failed = 0
    return {
        "job_id": job_id, "tenant": "t", "kind": "bench.noop", "priority": "normal", "status": status,
        "counts": {"total": total, "succeeded": done - failed, "failed": failed, "cancelled": 0, "timed_out": 0,
                   "pending": total - done},
        "percent": 100.0 * done / total, "created_at": "2026-01-01T00:00:00+00:00", "options": {},
        "finished_at": "2026-01-01T00:01:00+00:00" if status in ("completed", "failed") else None,
    }  # fmt: skip


def live_event(job_id: str, status: str, done: int, total: int = 4) -> dict[str, Any]:
    """The data of a progress or terminal event, as intake's hub sends it."""
    kind = "job.progress" if status == "running" else "job.completed"
    return {
        "type": kind, "job_id": job_id, "status": status, "percent": 100.0 * done / total,
        "counts": {"total": total, "succeeded": done, "failed": 0, "cancelled": 0, "timed_out": 0,
                   "pending": total - done, "done": done},
    }  # fmt: skip
