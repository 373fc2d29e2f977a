import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from services.ops.devstack.testsite import (
    TestSite,
    expected_email,
    expected_outbound_links,
    expected_phone,
    expected_title,
    serving_test_site,
)
from shared.errors import ItemFailed
from shared.kinds import ItemHandler
from shared.kinds.settings import KindSettings
from shared.kinds.web_page import WEB_PAGE
from shared.kinds.web_page.fetch import HostSlots

LOCAL_SITE = ["127.0.0.0/8"]


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    with serving_test_site(pages=200) as site:
        yield site


@pytest.fixture
async def handler() -> AsyncIterator[ItemHandler]:
    async with WEB_PAGE.start(KindSettings(web_allow_networks=LOCAL_SITE)) as handler:
        yield handler


async def fetch_failure(handler: ItemHandler, url: str) -> str:
    with pytest.raises(ItemFailed) as raised:
        await handler({"url": url}, {})
    return raised.value.reason


@pytest.mark.parametrize("i", [0, 17, 199])
async def test_a_business_page_yields_what_the_site_generated(site, handler, i):
    output = await handler({"url": site.page_url(i)}, {})
    assert output["url"] == output["final_url"] == site.page_url(i)
    assert (output["status"], output["redirects"]) == (200, 0)
    assert output["title"] == expected_title(i)
    assert output["canonical"] == site.page_url(i)
    assert output["emails"] == [expected_email(i)]
    assert output["phones"] == [expected_phone(i)]
    assert output["links"] == expected_outbound_links(i)
    assert output["bytes"] > 0


async def test_requests_carry_the_configured_user_agent(site):
    settings = KindSettings(web_allow_networks=LOCAL_SITE, web_user_agent="SluiceTest/9 (+local)")
    async with WEB_PAGE.start(settings) as handler:
        await handler(site.page_url(1), {})
    assert site.last_user_agent == "SluiceTest/9 (+local)"


async def test_redirects_are_followed_and_counted(site, handler):
    output = await handler(site.url("/redirect/3"), {})
    assert output["url"] == site.url("/redirect/3")
    assert output["final_url"] == site.page_url(0)
    assert output["redirects"] == 3
    assert output["title"] == expected_title(0)


async def test_a_missing_page_fails_with_its_http_status(site, handler):
    assert await fetch_failure(handler, site.url("/missing")) == "HTTP 404 Not Found"


async def test_redirects_up_to_the_limit_succeed_and_one_more_fails(site):
    async with WEB_PAGE.start(KindSettings(web_allow_networks=LOCAL_SITE, web_max_redirects=2)) as handler:
        assert (await handler(site.url("/redirect/2"), {}))["redirects"] == 2
        reason = await fetch_failure(handler, site.url("/redirect/3"))
    assert reason == "too many redirects: more than 2 (SLUICE_KINDS_WEB_MAX_REDIRECTS)"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (
            "/big?bytes=200000",
            "body of 200000 bytes is over the cap of 65536 bytes (SLUICE_KINDS_WEB_MAX_BODY_BYTES)",
        ),
        (
            "/big?bytes=200000&length=0",
            "body is over the cap of 65536 bytes (SLUICE_KINDS_WEB_MAX_BODY_BYTES)",
        ),
    ],
)
async def test_a_body_over_the_cap_fails_naming_the_cap(site, path, reason):
    async with WEB_PAGE.start(KindSettings(web_allow_networks=LOCAL_SITE, web_max_body_bytes=65536)) as handler:
        assert await fetch_failure(handler, site.url(path)) == reason
        assert (await handler(site.url("/big?bytes=65536&length=0"), {}))["bytes"] == 65536


async def test_the_local_site_is_refused_unless_allowlisted_and_never_contacted(site):
    served_before = site.requests_served
    async with WEB_PAGE.start(KindSettings(web_allow_networks=[])) as handler:
        reason = await fetch_failure(handler, site.page_url(0))
    assert reason == (
        "refused: 127.0.0.1 is a loopback address (host 127.0.0.1); allow it with SLUICE_KINDS_WEB_ALLOW_NETWORKS"
    )
    assert site.requests_served == served_before


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a cloud metadata address"),
        ("http://10.0.0.5:8080/admin", "refused: 10.0.0.5 is a private address"),
        ("http://[::1]/", "refused: ::1 is a loopback address"),
        ("http://metadata.google.internal/", "refused: metadata.google.internal is a cloud metadata host"),
        ("file:///etc/passwd", "redirect to a URL that is not http(s): 'file:///etc/passwd'"),
    ],
)
async def test_a_redirect_from_an_allowed_site_to_a_forbidden_target_is_refused_at_the_hop(
    site, handler, target, reason
):
    reason_given = await fetch_failure(handler, site.url(f"/redirect-to?url={target}"))
    assert reason_given.startswith(reason)


async def test_a_volatile_page_keeps_its_content_hash_across_fetches(site, handler):
    first = await handler(site.url("/volatile/5"), {})
    second = await handler(site.url("/volatile/5"), {})
    assert first["title"] == expected_title(5)
    assert first["content_hash"] == second["content_hash"]


async def test_a_new_page_version_changes_the_title_and_the_content_hash(handler):
    with serving_test_site(pages=10) as own_site:
        before = await handler(own_site.page_url(4), {})
        own_site.set_version(4, 2)
        after = await handler(own_site.page_url(4), {})
    assert after["title"] == expected_title(4, version=2)
    assert before["content_hash"] != after["content_hash"]


async def test_requests_to_one_host_never_exceed_the_per_host_cap():
    settings = KindSettings(web_allow_networks=LOCAL_SITE, web_per_host_concurrency=2)
    with serving_test_site(pages=10) as own_site:
        async with WEB_PAGE.start(settings) as handler:
            outputs = await asyncio.gather(*(handler(own_site.url(f"/slow?ms=200&n={n}"), {}) for n in range(6)))
        assert [output["status"] for output in outputs] == [200] * 6
        assert own_site.requests_served == 6
        assert own_site.max_concurrent_requests == 2  # the cap is reached and never exceeded


async def test_a_read_timeout_fails_naming_the_timeout(site):
    async with WEB_PAGE.start(KindSettings(web_allow_networks=LOCAL_SITE, web_read_timeout_s=0.2)) as handler:
        assert await fetch_failure(handler, site.url("/slow?ms=3000")) == "timeout: ReadTimeout after 0.2s"


async def test_a_refused_connection_fails_naming_the_error(handler):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # bound but never listening: connections are refused
        reason = await fetch_failure(handler, f"http://127.0.0.1:{closed_port}/")
    assert reason.startswith("network error: ConnectError")


async def test_an_invalid_item_fails_with_the_validation_reason(handler):
    assert await fetch_failure(handler, "ftp://example.com/") == (
        "invalid item: scheme 'ftp' is not allowed; use http or https"
    )


async def test_host_slots_forget_a_host_once_its_requests_are_done():
    slots = HostSlots(per_host=2)
    async with slots.slot("a.example"), slots.slot("a.example"), slots.slot("b.example"):
        assert len(slots) == 2
    assert len(slots) == 0
