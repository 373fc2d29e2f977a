import pytest

from shared.kinds.web_page.items import MAX_URL_LENGTH, validate_item


@pytest.mark.parametrize(
    "item",
    ["https://example.com/a?b=1", {"url": "https://example.com/a?b=1"}, "  https://example.com/a?b=1\n"],
)
def test_a_url_given_bare_or_as_an_object_becomes_the_same_item(item):
    assert validate_item(item) == {"url": "https://example.com/a?b=1"}


@pytest.mark.parametrize(
    "url", ["http://example.com", "HTTPS://Example.com:8443/x", "http://[2001:db8::1]/", "http://10.0.0.5/"]
)
def test_http_and_https_urls_with_a_host_are_accepted(url):
    assert validate_item(url) == {"url": url}


def test_a_url_of_exactly_the_maximum_length_is_accepted():
    url = "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/"))
    assert validate_item(url) == {"url": url}


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"url": "https://example.com", "depth": 2}, "unexpected keys ['depth']"),
        ({"href": "https://example.com"}, "unexpected keys ['href']"),
        ({}, "missing 'url'"),
        (42, "not int"),
        (None, "not NoneType"),
        (["https://example.com"], "not list"),
        ({"url": 7}, "not int"),
        ("", "empty URL"),
        ("   ", "empty URL"),
        ("https://example.com/" + "a" * MAX_URL_LENGTH, f"over the limit of {MAX_URL_LENGTH}"),
        ("ftp://example.com/file", "scheme 'ftp' is not allowed"),
        ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
        ("example.com/page", "scheme '(none)' is not allowed"),
        ("http://", "no host"),
        ("https:///path", "no host"),
        ("https://user:secret@example.com/", "credentials"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\x00", "control characters"),
        ("https://example.com:99999/", "malformed URL"),
        ("https://example.com:port/", "malformed URL"),
    ],
)
def test_an_unfetchable_item_is_rejected_with_its_reason(item, reason):
    with pytest.raises(ValueError) as raised:
        validate_item(item)
    assert reason in str(raised.value)
