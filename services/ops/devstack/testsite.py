"""A local business-directory site for tests and the demo: deterministic pages, failure routes, no internet.

The expected_* functions are the site's own generator, so tests compare against them, not hard-coded text.
"""

import html
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

NAMES = ("Acme", "Bluebird", "Cedar", "Delta", "Evergreen", "Foxglove", "Granite", "Harbor", "Ironwood")
TRADES = ("Plumbing", "Bakery", "Locksmiths", "Dental", "Florist", "Roofing", "Tailors", "Auto Repair")
CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Oakdale", "Millbrook", "Ashford")
PARTNER_HOSTS = 7
MAX_SLOW_MS = 30_000
DEFAULT_BIG_BYTES = 6 * 1024 * 1024
CHUNK = 64 * 1024


def expected_title(i: int, version: int = 0) -> str:
    """Title of /business/{i}; set_version(i, v) with v > 0 appends " (v{v})"."""
    name = f"{NAMES[i % len(NAMES)]} {TRADES[i // len(NAMES) % len(TRADES)]} #{i} — {CITIES[i % len(CITIES)]}"
    return f"{name} (v{version})" if version else name


def expected_description(i: int) -> str:
    return f"{TRADES[i // len(NAMES) % len(TRADES)]} in {CITIES[i % len(CITIES)]}: hours, phone and e-mail."


def expected_email(i: int) -> str:
    return f"info{i}@example.test"


def expected_phone(i: int) -> str:
    """The page's phone number, normalized as the web.page kind reports it ("+1555" and seven digits)."""
    return f"+1555{i // 10_000 % 1000:03d}{i % 10_000:04d}"


def displayed_phone(i: int) -> str:
    """The same number as a person would write it: "+1 (555) 001-0017"."""
    digits = expected_phone(i)
    return f"+1 (555) {digits[5:8]}-{digits[8:]}"


def expected_outbound_links(i: int) -> list[str]:
    """Links from /business/{i} to other hosts, sorted."""
    return sorted({f"https://partner{i % PARTNER_HOSTS}.example.org/", f"https://reviews.example.net/biz/{i}"})


def render_business(i: int, pages: int, version: int = 0, nonce: str | None = None) -> str:
    """HTML of /business/{i}; a nonce adds markup that changes on every fetch but no extracted field."""
    title, email = html.escape(expected_title(i, version)), expected_email(i)
    noise = (
        f'<meta name="request-nonce" content="{nonce}"><script>window.nonce = "{nonce}";</script>'
        f"<!-- rendered {nonce} -->"
        if nonce
        else ""
    )
    links = "".join(f'<li><a href="{url}">Partner</a></li>' for url in expected_outbound_links(i))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{noise}
<title>{title}</title>
<meta name="description" content="{html.escape(expected_description(i))}">
<link rel="canonical" href="/business/{i}">
</head><body{f' data-nonce="{nonce}"' if nonce else ""}>
<h1>{title}</h1>
<p>Open since 2009-04-12. Licence 4821937465. Call {displayed_phone(i)}
or <a href="tel:{expected_phone(i)}">tap to call</a>.</p>
<p>Write to {email} or <a href="mailto:{email}?subject=Hello">send us a message</a>.</p>
<ul>{links}</ul>
<nav><a href="/business/{(i + 1) % pages}">Next</a> <a href="/">Directory</a> <a href="#top">Top</a></nav>
</body></html>
"""


class TestSite:
    """A running site: its address, per-page versions and what the server observed."""

    __test__ = False  # not a pytest test class

    def __init__(self, base_url: str, pages: int) -> None:
        self.base_url, self.pages = base_url, pages
        self._lock = threading.Lock()
        self._versions: dict[int, int] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._requests = 0
        self._last_user_agent: str | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def page_url(self, i: int) -> str:
        return self.url(f"/business/{i}")

    def set_version(self, i: int, version: int) -> None:
        """Changes page i's title to expected_title(i, version) for later fetches."""
        with self._lock:
            self._versions[i] = version

    def change(self, *pages: int) -> None:
        """Changes each page's title (its next version), so a rescan sees a changed page."""
        with self._lock:
            for i in pages:
                self._versions[i] = self._versions.get(i, 0) + 1

    def version(self, i: int) -> int:
        with self._lock:
            return self._versions.get(i, 0)

    @property
    def max_concurrent_requests(self) -> int:
        """The most requests the server was handling at once."""
        with self._lock:
            return self._max_in_flight

    @property
    def requests_served(self) -> int:
        with self._lock:
            return self._requests

    @property
    def last_user_agent(self) -> str | None:
        with self._lock:
            return self._last_user_agent

    @contextmanager
    def observing_request(self, user_agent: str | None) -> Iterator[None]:
        """Counts a request the server is handling (used by its request handler)."""
        with self._lock:
            self._in_flight += 1
            self._requests += 1
            self._last_user_agent = user_agent
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096
    site: TestSite

    def handle_error(self, request: object, client_address: object) -> None:
        logger.debug("test site: request from %s failed", client_address, exc_info=True)


class _SiteServerIPv6(_SiteServer):
    address_family = socket.AF_INET6


class _SiteHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; Nagle would stall keep-alive
    timeout = 30
    server: _SiteServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        logger.debug("test site: %s", format % args)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        site = self.server.site
        with site.observing_request(self.headers.get("User-Agent")):
            try:
                self._route(site)
            except ValueError as exc:
                self._send(400, f"bad request: {exc}".encode(), "text/plain; charset=utf-8")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (e.g. a body cap); nothing to answer

    def _route(self, site: TestSite) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        segments = [segment for segment in parts.path.split("/") if segment]
        match segments:
            case ["business", number] if number.isdigit() and int(number) < site.pages:
                self._send_html(render_business(int(number), site.pages, site.version(int(number))))
            case ["volatile", number] if number.isdigit() and int(number) < site.pages:
                page = render_business(int(number), site.pages, site.version(int(number)), uuid.uuid4().hex)
                self._send_html(page)
            case ["redirect", count] if count.isdigit() and int(count) >= 1:
                self._redirect("/business/0" if int(count) == 1 else f"/redirect/{int(count) - 1}")
            case ["redirect-to"] if "url" in query:
                self._redirect(query["url"][0])
            case ["slow"]:
                time.sleep(min(int(query.get("ms", ["100"])[0]), MAX_SLOW_MS) / 1000)
                self._send_html("<!doctype html><html><head><title>Slow page</title></head><body>ok</body></html>")
            case ["big"]:
                size = int(query.get("bytes", [str(DEFAULT_BIG_BYTES)])[0])
                self._send_big(size, declare_length=query.get("length", ["1"])[0] != "0")
            case []:
                items = "".join(f'<li><a href="/business/{i}">{i}</a></li>' for i in range(min(site.pages, 20)))
                self._send_html(f"<!doctype html><html><head><title>Directory</title></head><ul>{items}</ul>")
            case _:
                self._send(404, b"not found", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_html(self, page: str) -> None:
        self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_big(self, size: int, *, declare_length: bool) -> None:
        """An HTML body of size bytes; without a declared length it ends when the connection closes."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if declare_length:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        filler = b"<p>" + b"x" * (CHUNK - 7) + b"</p>"
        for offset in range(0, size, CHUNK):
            self.wfile.write(filler[: min(CHUNK, size - offset)])


@contextmanager
def serving_test_site(pages: int = 5000, host: str = "127.0.0.1", port: int = 0) -> Iterator[TestSite]:
    """Serves the site from a daemon thread until the block exits; port 0 picks a free port."""
    server = (_SiteServerIPv6 if ":" in host else _SiteServer)((host, port), _SiteHandler)
    bound_host, bound_port = server.server_address[:2]
    assert isinstance(bound_host, str)  # a bound AF_INET/AF_INET6 socket's host is text; typeshed also allows bytes
    shown_host = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    server.site = TestSite(f"http://{shown_host}:{bound_port}", pages)
    thread = threading.Thread(target=server.serve_forever, name="sluice-test-site", daemon=True)
    thread.start()
    try:
        yield server.site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
