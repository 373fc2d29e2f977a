"""A fetched response turned into the web.page output: decoding, HTML detection and the fields."""

import codecs
import re
from dataclasses import dataclass
from typing import Any

from shared.kinds.web_page.extract import extract_other, extract_page

HTML_TYPES = ("text/html", "application/xhtml+xml")
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
SNIFF_BYTES = 1024


@dataclass(frozen=True)
class FetchedPage:
    """The last response of a fetch, after any redirects."""

    status: int
    final_url: str
    redirects: int
    content_type: str | None
    body: bytes


def page_output(url: str, page: FetchedPage, max_links: int) -> dict[str, Any]:
    """The handler's JSON output for the item url."""
    if is_html(page.content_type, page.body):
        fields = extract_page(decode_html(page.body, page.content_type), page.final_url, max_links)
    else:
        fields = extract_other(page.body)
    return {
        "url": url,
        "status": page.status,
        "final_url": page.final_url,
        "redirects": page.redirects,
        **fields,
        "bytes": len(page.body),
    }


def is_html(content_type: str | None, body: bytes) -> bool:
    if content_type:
        return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES
    head = body[:SNIFF_BYTES].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def decode_html(body: bytes, content_type: str | None) -> str:
    """Text of an HTML body: charset from the header, else from a <meta>, else UTF-8; bad bytes replaced."""
    for candidate in (header_charset(content_type), meta_charset(body), "utf-8"):
        if candidate and is_known_encoding(candidate):
            return body.decode(candidate, errors="replace")
    return body.decode("utf-8", errors="replace")


def header_charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def meta_charset(body: bytes) -> str | None:
    match = META_CHARSET.search(body[:SNIFF_BYTES])
    return match.group(1).decode("ascii", errors="ignore") if match else None


def is_known_encoding(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True
