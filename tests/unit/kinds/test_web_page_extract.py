import hashlib

import pytest

from services.ops.devstack.testsite import (
    expected_description,
    expected_email,
    expected_outbound_links,
    expected_phone,
    expected_title,
    render_business,
)
from shared.kinds.web_page.contacts import (
    emails_from_mailto,
    find_emails,
    find_phones,
    normalize_phone,
    phone_from_tel,
)
from shared.kinds.web_page.extract import extract_other, extract_page
from shared.kinds.web_page.page import FetchedPage, decode_html, is_html, page_output

PAGE_URL = "https://shop.example.com/business/42"


def page(head: str = "", body: str = "") -> str:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


def test_a_business_page_yields_the_fields_its_generator_put_in():
    fields = extract_page(render_business(42, pages=100), PAGE_URL, max_links=50)
    assert fields["title"] == expected_title(42)
    assert fields["description"] == expected_description(42)
    assert fields["canonical"] == "https://shop.example.com/business/42"
    assert fields["emails"] == [expected_email(42)]
    assert fields["phones"] == [expected_phone(42)]  # not the date or the licence number beside it
    assert fields["links"] == expected_outbound_links(42)
    assert fields["links_truncated"] is False


def test_title_and_description_are_stripped_and_whitespace_collapsed():
    html = page('<title>\n  Acme \t Plumbing\n</title><meta name="Description" content="  Pipes,   fixed. ">')
    fields = extract_page(html, PAGE_URL, max_links=10)
    assert (fields["title"], fields["description"]) == ("Acme Plumbing", "Pipes, fixed.")


def test_missing_or_blank_title_description_and_canonical_are_none():
    fields = extract_page(page("<title>  </title><meta name=description content=' '>"), PAGE_URL, 10)
    assert (fields["title"], fields["description"], fields["canonical"]) == (None, None, None)


def test_the_canonical_link_is_resolved_against_the_page_or_its_base():
    relative = page('<link rel="Alternate Canonical" href="../b/7#reviews">')
    assert extract_page(relative, PAGE_URL, 10)["canonical"] == "https://shop.example.com/b/7"
    based = page('<base href="https://cdn.example.net/dir/"><link rel=canonical href="p">')
    assert extract_page(based, PAGE_URL, 10)["canonical"] == "https://cdn.example.net/dir/p"


def test_a_canonical_link_that_is_not_http_is_ignored():
    assert extract_page(page('<link rel=canonical href="javascript:void(0)">'), PAGE_URL, 10)["canonical"] is None


def test_emails_come_from_text_and_mailto_links_sorted_and_unique():
    body = (
        'Write to Sales@Example.com or <a href="mailto:sales@example.com,help@example.org?subject=Hi">us</a>.'
        "<script>var hidden = 'bot@tracker.example';</script><img src='logo@2x.png'>"
    )
    assert extract_page(page(body=body), PAGE_URL, 10)["emails"] == ["help@example.org", "sales@example.com"]


def test_phones_come_from_text_and_tel_links_normalized():
    body = 'Call +1 (555) 123-4567 or <a href="tel:+44-20-7946-0958">London</a>; fax 555.987.6543.'
    assert extract_page(page(body=body), PAGE_URL, 10)["phones"] == [
        "+15551234567",
        "+442079460958",
        "5559876543",
    ]


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("+1 (555) 123-4567", {"+15551234567"}),
        ("+1-555-123-4567", {"+15551234567"}),
        ("+44 20 7946 0958", {"+442079460958"}),
        ("+4930123456", {"+4930123456"}),
        ("555-123-4567", {"5551234567"}),
        ("(555) 123-4567", {"5551234567"}),
        ("1-800-555-0199", {"18005550199"}),
        ("555.123.4567", {"5551234567"}),
        ("fax 555.123.4567.", {"5551234567"}),
        ("build 555.123.4567.89", set()),
        ("opened 2009-04-12", set()),
        ("on 12/05/2023", set()),
        ("licence 4821937465", set()),
        ("ip 192.168.10.200", set()),
        ("version 1.2.3", set()),
        ("order 12345-678", set()),
        ("+3 and +12", set()),
    ],
)
def test_phone_patterns_are_found_and_dates_and_plain_numbers_are_not(text, phones):
    assert find_phones(text) == phones


@pytest.mark.parametrize(
    ("href", "phone"),
    [
        ("tel:+1-555-123-4567", "+15551234567"),
        ("TEL:%2B15551234567;ext=2", "+15551234567"),
        ("tel:555 1234", "5551234"),
        ("tel:12", None),
        ("tel:+1234567890123456", None),
        ("mailto:a@b.example", None),
    ],
)
def test_tel_links_are_normalized_or_ignored(href, phone):
    assert phone_from_tel(href) == phone


def test_normalized_phones_keep_a_leading_plus_only():
    assert (normalize_phone(" +1 (555) 123-4567"), normalize_phone("555-123-4567")) == (
        "+15551234567",
        "5551234567",
    )


def test_emails_are_lowercased_and_file_names_are_not_emails():
    assert find_emails("Info@Example.COM, sprite@2x.png, a.b+c@sub.example.org.") == {
        "info@example.com",
        "a.b+c@sub.example.org",
    }


def test_a_mailto_link_may_carry_several_addresses_and_a_query():
    assert emails_from_mailto("MAILTO:a@x.example,%20b@y.example?cc=c@z.example") == {
        "a@x.example",
        "b@y.example",
    }
    assert emails_from_mailto("https://x.example/") == set()


def test_only_absolute_http_links_to_other_hosts_are_outbound():
    body = (
        '<a href="/about">internal</a><a href="https://SHOP.example.com/x">same host</a>'
        '<a href="//cdn.example.net/lib">protocol-relative</a><a href="https://b.example.org/p#frag">frag</a>'
        '<a href="https://b.example.org/p">duplicate</a><a href="ftp://files.example.org/">ftp</a>'
        '<a href="javascript:void(0)">js</a><area href="http://map.example.org/">'
    )
    assert extract_page(page(body=body), PAGE_URL, 10)["links"] == [
        "http://map.example.org/",
        "https://b.example.org/p",
        "https://cdn.example.net/lib",
    ]


def test_links_over_the_cap_are_cut_and_the_cut_is_reported():
    body = "".join(f'<a href="https://partner{n}.example.org/">p</a>' for n in range(5))
    capped = extract_page(page(body=body), PAGE_URL, max_links=3)
    assert capped["links"] == [f"https://partner{n}.example.org/" for n in range(3)]
    assert capped["links_truncated"] is True
    assert extract_page(page(body=body), PAGE_URL, max_links=5)["links_truncated"] is False


def test_the_content_hash_ignores_markup_that_changes_between_fetches():
    first = extract_page(render_business(7, pages=100, nonce="a1b2c3"), PAGE_URL, 50)
    second = extract_page(render_business(7, pages=100, nonce="d4e5f6"), PAGE_URL, 50)
    plain = extract_page(render_business(7, pages=100), PAGE_URL, 50)
    assert first["content_hash"] == second["content_hash"] == plain["content_hash"]


def test_the_content_hash_changes_when_the_title_changes():
    before = extract_page(render_business(7, pages=100), PAGE_URL, 50)
    after = extract_page(render_business(7, pages=100, version=2), PAGE_URL, 50)
    assert after["title"] == expected_title(7, version=2)
    assert before["content_hash"] != after["content_hash"]


def test_a_body_that_is_not_html_has_empty_fields_and_the_hash_of_its_bytes():
    assert extract_other(b"%PDF-1.7") == {
        "title": None,
        "description": None,
        "canonical": None,
        "emails": [],
        "phones": [],
        "links": [],
        "links_truncated": False,
        "content_hash": hashlib.sha256(b"%PDF-1.7").hexdigest(),
    }


@pytest.mark.parametrize(
    ("content_type", "body", "html"),
    [
        ("text/html; charset=utf-8", b"", True),
        ("application/xhtml+xml", b"", True),
        ("TEXT/HTML", b"", True),
        ("application/json", b"<html>", False),
        (None, b"  <!DOCTYPE html><html>", True),
        (None, b"<html lang=en>", True),
        (None, b"\x89PNG", False),
    ],
)
def test_html_is_recognised_by_content_type_or_by_sniffing_when_there_is_none(content_type, body, html):
    assert is_html(content_type, body) is html


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        ("Café".encode("latin-1"), "text/html; charset=ISO-8859-1", "Café"),
        (
            '<meta charset="windows-1252">Caf\xe9'.encode("cp1252"),
            "text/html",
            '<meta charset="windows-1252">Café',
        ),
        ("Café".encode(), "text/html; charset=no-such-charset", "Café"),
        (b"Caf\xff", None, "Caf\ufffd"),
    ],
)
def test_html_is_decoded_by_header_then_meta_charset_then_utf8(body, content_type, text):
    assert decode_html(body, content_type) == text


def test_the_output_carries_the_fetch_facts_and_the_extracted_fields():
    body = render_business(3, pages=10).encode()
    fetched = FetchedPage(200, PAGE_URL, 2, "text/html; charset=utf-8", body)
    output = page_output("https://shop.example.com/old", fetched, max_links=50)
    assert list(output) == [
        "url", "status", "final_url", "redirects", "title", "description", "canonical",
        "emails", "phones", "links", "links_truncated", "content_hash", "bytes",
    ]  # fmt: skip
    assert output["url"] == "https://shop.example.com/old"
    assert (output["status"], output["final_url"], output["redirects"]) == (200, PAGE_URL, 2)
    assert (output["title"], output["bytes"]) == (expected_title(3), len(body))


def test_the_output_of_a_non_html_body_hashes_its_bytes():
    fetched = FetchedPage(200, PAGE_URL, 0, "application/pdf", b"%PDF-1.7")
    output = page_output(PAGE_URL, fetched, max_links=50)
    assert output["title"] is None
    assert output["content_hash"] == hashlib.sha256(b"%PDF-1.7").hexdigest()
    assert output["bytes"] == 8
