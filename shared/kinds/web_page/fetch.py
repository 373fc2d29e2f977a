"""Fetching one page over HTTP: manual redirects with the SSRF guard per hop, capped body, per-host slots."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from shared.errors import ItemFailed
from shared.kinds.settings import KindSettings
from shared.kinds.web_page.guard import AllowList
from shared.kinds.web_page.page import FetchedPage
from shared.kinds.web_page.resolve import ensure_host_allowed

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
BODY_CAP_SETTING = "SLUICE_KINDS_WEB_MAX_BODY_BYTES"


def open_client(settings: KindSettings) -> httpx.AsyncClient:
    """A client that follows no redirects itself and ignores proxy variables, so the guard sees every hop."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.web_read_timeout_s, connect=settings.web_connect_timeout_s, pool=None),
        headers={"User-Agent": settings.web_user_agent, "Accept": ACCEPT},
        limits=httpx.Limits(
            max_connections=settings.web_max_connections, max_keepalive_connections=settings.web_max_connections
        ),
    )


class HostSlots:
    """At most `per_host` requests in flight to one host; idle hosts are forgotten so memory stays bounded."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        semaphore, users = self._slots.get(host, (asyncio.Semaphore(self._per_host), 0))
        self._slots[host] = (semaphore, users + 1)
        try:
            async with semaphore:
                yield
        finally:
            semaphore, users = self._slots[host]
            if users == 1:
                del self._slots[host]
            else:
                self._slots[host] = (semaphore, users - 1)

    def __len__(self) -> int:
        return len(self._slots)


class PageFetcher:
    """GETs a URL for the web.page handler; every failure is an ItemFailed with its reason."""

    def __init__(self, client: httpx.AsyncClient, settings: KindSettings, allow: AllowList) -> None:
        self._client, self._settings, self._allow = client, settings, allow
        self._host_slots = HostSlots(settings.web_per_host_concurrency)
        # Requests left waiting inside httpx's pool are rescanned on every event and starve the loop,
        # so beyond the pool's size they wait on this semaphore instead.
        self._request_slots = asyncio.Semaphore(settings.web_max_connections)

    async def fetch(self, url: str) -> FetchedPage:
        """Follows up to web_max_redirects redirects, checking the guard before each request.

        Each hop takes its host's slot, then a request slot, so a busy host never holds request slots idle.
        """
        target = httpx.URL(url)
        for redirects in range(self._settings.web_max_redirects + 1):
            host = target.raw_host.decode("ascii")
            async with self._host_slots.slot(host), self._request_slots:
                await ensure_host_allowed(host, port_of(target), self._allow, self._settings.web_connect_timeout_s)
                outcome = await self._get(target, redirects)
            if isinstance(outcome, FetchedPage):
                return outcome
            target = outcome
        limit = self._settings.web_max_redirects
        raise ItemFailed(f"too many redirects: more than {limit} (SLUICE_KINDS_WEB_MAX_REDIRECTS)")

    async def _get(self, url: httpx.URL, redirects: int) -> FetchedPage | httpx.URL:
        """The page, or the URL a redirect points to."""
        try:
            async with self._client.stream("GET", url) as response:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    return redirect_target(url, location)
                if response.status_code >= 400:
                    raise http_failure(response)
                body = await read_capped(response, self._settings.web_max_body_bytes)
                return FetchedPage(
                    status=response.status_code,
                    final_url=str(url),
                    redirects=redirects,
                    content_type=response.headers.get("content-type"),
                    body=body,
                )
        except httpx.TimeoutException as exc:
            raise ItemFailed(f"timeout: {type(exc).__name__} after {self._timeout_of(exc)}s", retryable=True) from exc
        except httpx.RequestError as exc:
            # Connection and protocol errors are worth another try; an unsupported scheme or a body that
            # cannot be decoded will fail the same way again.
            transient = isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)
            raise ItemFailed(f"network error: {type(exc).__name__}: {exc}", retryable=transient) from exc

    def _timeout_of(self, exc: httpx.TimeoutException) -> float | None:
        if isinstance(exc, httpx.ConnectTimeout):
            return self._settings.web_connect_timeout_s
        if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
            return self._settings.web_read_timeout_s
        return None


def http_failure(response: httpx.Response) -> ItemFailed:
    """An HTTP error status as a failure: 429 and 5xx are transient (honouring Retry-After), other 4xx are not."""
    status = response.status_code
    transient = status == 429 or status >= 500
    return ItemFailed(
        f"HTTP {status} {response.reason_phrase}".rstrip(),
        retryable=transient,
        retry_after_s=retry_after_s(response.headers.get("retry-after")) if transient else None,
    )


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header given in seconds; an HTTP date or garbage is ignored."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def port_of(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    """Where a redirect leads, resolved against the current URL; only http(s) targets are followed."""
    try:
        target = url.join(location).copy_with(fragment=None)
    except httpx.InvalidURL as exc:
        raise ItemFailed(f"redirect to a malformed URL {location!r}: {exc}") from exc
    if target.scheme not in ("http", "https") or not target.host:
        raise ItemFailed(f"redirect to a URL that is not http(s): {location!r}")
    return target


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The decoded body, failing as soon as it exceeds cap bytes (the declared length is checked first)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise ItemFailed(f"body of {declared} bytes is over the cap of {cap} bytes ({BODY_CAP_SETTING})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise ItemFailed(f"body is over the cap of {cap} bytes ({BODY_CAP_SETTING})")
        chunks.append(chunk)
    return b"".join(chunks)
