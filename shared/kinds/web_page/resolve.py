"""SSRF guard, I/O part: resolve a host and refuse it unless every address it resolves to is allowed."""

import asyncio
import socket

from shared.errors import ItemFailed
from shared.kinds.web_page.guard import AllowList, host_refusal, refusal_message, resolved_refusal


async def ensure_host_allowed(host: str, port: int, allow: AllowList, timeout_s: float) -> None:
    """Raises ItemFailed if the host is refused by name or any address it resolves to is refused."""
    if reason := host_refusal(host, allow):
        raise ItemFailed(refusal_message(host, reason))
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise ItemFailed(f"timeout: DNS lookup of {host} after {timeout_s}s", retryable=True) from exc
    except OSError as exc:
        # EAI_AGAIN is the resolver's "try again later"; a name that does not exist stays that way.
        transient = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
        raise ItemFailed(f"DNS lookup of {host} failed: {type(exc).__name__}: {exc}", retryable=transient) from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise ItemFailed(f"DNS lookup of {host} returned no addresses")
    if reason := resolved_refusal(host, addresses, allow):
        raise ItemFailed(refusal_message(host, reason))
