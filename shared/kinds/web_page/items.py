"""What a web.page item is: one http(s) URL, given bare or as {"url": ...}."""

from urllib.parse import urlsplit

import httpx
from pydantic import JsonValue

MAX_URL_LENGTH = 2048
ALLOWED_SCHEMES = frozenset({"http", "https"})


def validate_item(item: JsonValue) -> dict[str, JsonValue]:
    """Returns {"url": url} for a valid item; raises ValueError naming what is wrong."""
    return {"url": item_url(item)}


def item_url(item: JsonValue) -> str:
    """The URL of a valid item; raises ValueError naming what is wrong."""
    if isinstance(item, dict):
        extra = sorted(set(item) - {"url"})
        if extra:
            raise ValueError(f"unexpected keys {extra}; a web.page item is a URL or {{'url': ...}}")
        if "url" not in item:
            raise ValueError("missing 'url'")
        item = item["url"]
    if not isinstance(item, str):
        raise ValueError(f"a web.page item is a URL string or {{'url': ...}}, not {type(item).__name__}")
    return validate_url(item)


def validate_url(raw: str) -> str:
    """Returns the URL without surrounding whitespace if it is a fetchable http(s) URL."""
    url = raw.strip()
    if not url:
        raise ValueError("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL is {len(url)} characters, over the limit of {MAX_URL_LENGTH}")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise ValueError("URL contains whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise ValueError(f"scheme {parts.scheme or '(none)'!r} is not allowed; use http or https")
    if not parts.hostname:
        raise ValueError("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not accepted")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"malformed URL: {exc}") from exc
    return url
