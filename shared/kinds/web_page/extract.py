"""Fields of a business page, pulled from its HTML; pure, so it is tested without a network."""

import hashlib
import re
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import orjson
from selectolax.lexbor import LexborHTMLParser, LexborNode

from shared.kinds.web_page.contacts import emails_from_mailto, find_emails, find_phones, phone_from_tel

HASHED_FIELDS = ("title", "description", "canonical", "emails", "phones", "links")
INVISIBLE_TAGS = ["script", "style", "noscript", "template"]
WHITESPACE = re.compile(r"\s+")


def extract_page(html: str, final_url: str, max_links: int) -> dict[str, Any]:
    """Title, description, canonical, contacts and outbound links of a page, with a hash of them."""
    tree = LexborHTMLParser(html)
    base = base_url(tree, final_url)
    hrefs = [href for node in tree.css("a[href], area[href]") if (href := node.attributes.get("href"))]
    links = outbound_links(hrefs, base, page_host=urlsplit(final_url).hostname or "")
    title, description = collapsed(tree.css_first("title")), meta_content(tree)
    canonical = canonical_url(tree, base)
    text = visible_text(tree)  # strips scripts from the tree, so it comes after the head fields
    emails = find_emails(text).union(*(emails_from_mailto(href) for href in hrefs))
    phones = find_phones(text) | {phone for href in hrefs if (phone := phone_from_tel(href))}
    fields: dict[str, Any] = {
        "title": title,
        "description": description,
        "canonical": canonical,
        "emails": sorted(emails),
        "phones": sorted(phones),
        "links": links[:max_links],
        "links_truncated": len(links) > max_links,
    }
    return fields | {"content_hash": content_hash(fields)}


def extract_other(body: bytes) -> dict[str, Any]:
    """The same fields for a body that is not HTML: empty, with the hash of the bytes."""
    return {
        "title": None,
        "description": None,
        "canonical": None,
        "emails": [],
        "phones": [],
        "links": [],
        "links_truncated": False,
        "content_hash": hashlib.sha256(body).hexdigest(),
    }


def content_hash(fields: dict[str, Any]) -> str:
    """SHA-256 of the meaningful fields as canonical JSON, so markup noise leaves it unchanged."""
    meaningful = {name: fields[name] for name in HASHED_FIELDS}
    return hashlib.sha256(orjson.dumps(meaningful, option=orjson.OPT_SORT_KEYS)).hexdigest()


def collapsed(node: LexborNode | None) -> str | None:
    text = WHITESPACE.sub(" ", node.text()).strip() if node is not None else ""
    return text or None


def meta_content(tree: LexborHTMLParser, name: str = "description") -> str | None:
    node = tree.css_first(f'meta[name="{name}" i][content]')
    text = WHITESPACE.sub(" ", node.attributes.get("content") or "").strip() if node is not None else ""
    return text or None


def base_url(tree: LexborHTMLParser, final_url: str) -> str:
    node = tree.css_first("base[href]")
    href = node.attributes.get("href") if node is not None else None
    return (absolute_http_url(href, final_url) if href else None) or final_url


def canonical_url(tree: LexborHTMLParser, base: str) -> str | None:
    for node in tree.css("link[rel][href]"):
        if "canonical" in (node.attributes.get("rel") or "").lower().split():
            return absolute_http_url(node.attributes.get("href") or "", base)
    return None


def absolute_http_url(href: str, base: str) -> str | None:
    """The href resolved against base, without its fragment, if it is an http(s) URL with a host."""
    try:
        parts = urlsplit(urljoin(base, href.strip()))
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return urlunsplit(parts._replace(fragment=""))


def outbound_links(hrefs: list[str], base: str, page_host: str) -> list[str]:
    """Sorted unique http(s) links to hosts other than the page's own."""
    links = {url for href in hrefs if (url := absolute_http_url(href, base))}
    return sorted(url for url in links if (urlsplit(url).hostname or "") != page_host.lower())


def visible_text(tree: LexborHTMLParser) -> str:
    """The page's text without scripts and styles; removes those nodes from the tree."""
    tree.strip_tags(INVISIBLE_TAGS)
    return tree.root.text(separator=" ") if tree.root is not None else ""
