"""The built-in web.page kind: fetch a business page and extract its title, contacts and links."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from pydantic import JsonValue

from shared.errors import ItemFailed
from shared.kinds import ItemHandler, Kind
from shared.kinds.settings import KindSettings
from shared.kinds.web_page.fetch import PageFetcher, open_client
from shared.kinds.web_page.guard import AllowList
from shared.kinds.web_page.items import item_url, validate_item
from shared.kinds.web_page.page import page_output


@asynccontextmanager
async def start(settings: KindSettings) -> AsyncIterator[ItemHandler]:
    """Opens one HTTP client for the processor's life and yields the item handler."""
    allow = AllowList.parse(settings.web_allow_networks)
    async with open_client(settings) as client:
        fetcher = PageFetcher(client, settings, allow)

        async def on_item(item: JsonValue, options: Mapping[str, JsonValue]) -> JsonValue:
            try:
                url = item_url(item)
            except ValueError as exc:
                raise ItemFailed(f"invalid item: {exc}") from exc
            page = await fetcher.fetch(url)
            return page_output(url, page, settings.web_max_links)

        yield on_item


WEB_PAGE = Kind(
    "web.page",
    validate_item,
    start,
    description="Fetch a URL (SSRF-guarded); extract title, description, canonical, e-mails, phones, links",
    item_key=lambda item: str(item["url"]) if isinstance(item, dict) else str(item),
    fingerprint=lambda output: str(output["content_hash"]) if isinstance(output, dict) else str(output),
)

__all__ = ["WEB_PAGE", "start", "validate_item"]
