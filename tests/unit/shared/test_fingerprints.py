"""Item keys and output fingerprints: generic ones, and web.page's own."""

from shared.fingerprints import MAX_PLAIN_KEY_CHARS, item_key, output_fingerprint
from shared.kinds import load_kinds
from shared.kinds.web_page.extract import extract_page

KINDS = load_kinds()


def test_a_string_item_is_its_own_key_and_other_items_their_canonical_json() -> None:
    assert item_key(KINDS, "bench.noop", "sku-17") == "sku-17"
    assert item_key(KINDS, "bench.noop", {"b": 1, "a": [2]}) == item_key(KINDS, "bench.noop", {"a": [2], "b": 1})


def test_a_very_long_key_is_kept_as_its_hash() -> None:
    key = item_key(KINDS, "bench.noop", "x" * (MAX_PLAIN_KEY_CHARS + 1))
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64


def test_a_web_page_item_is_keyed_by_its_url() -> None:
    assert item_key(KINDS, "web.page", {"url": "https://example.com/a"}) == "https://example.com/a"


def test_the_generic_fingerprint_ignores_key_order_but_not_values() -> None:
    noop = KINDS["bench.noop"]
    assert output_fingerprint(noop, {"a": 1, "b": 2}) == output_fingerprint(noop, {"b": 2, "a": 1})
    assert output_fingerprint(noop, {"a": 1}) != output_fingerprint(noop, {"a": 2})


def test_a_web_page_fingerprint_ignores_volatile_markup_but_sees_a_new_title() -> None:
    page = '<html><head><title>{title}</title></head><body data-nonce="{nonce}"><a href="mailto:a@b.test">x</a></body>'

    def fingerprint(title: str, nonce: str) -> str:
        fields = extract_page(page.format(title=title, nonce=nonce), "https://example.com/", 10)
        return output_fingerprint(KINDS["web.page"], {"url": "https://example.com/", **fields, "bytes": len(nonce)})

    assert fingerprint("Acme", "1") == fingerprint("Acme", "2")
    assert fingerprint("Acme", "1") != fingerprint("Acme v2", "1")
