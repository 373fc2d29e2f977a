import base64

import pytest

from services.intake.logic import decode_cursor, encode_cursor
from shared.errors import InvalidJob


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("index", [0, 1, 9, 99, 12_345, 2**31 - 1])
def test_a_cursor_decodes_to_the_index_it_was_made_from(index):
    assert decode_cursor(encode_cursor(index)) == index


def test_the_cursor_is_url_safe_text_without_padding():
    cursor = encode_cursor(1_000_003)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor


@pytest.mark.parametrize("cursor", [None, ""])
def test_no_cursor_means_start_before_the_first_item(cursor):
    assert decode_cursor(cursor) == -1


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "%%%",
        _raw("no-colon"),
        _raw("i:"),
        _raw("i:seven"),
        _raw("x:5"),
        _raw("I:5"),
        _raw("i:-2"),
        _raw("i:-100"),
        base64.urlsafe_b64encode(b"\xff\xfe:1").decode(),
    ],
)
def test_a_cursor_this_api_did_not_issue_is_refused_with_a_400(cursor):
    with pytest.raises(InvalidJob) as caught:
        decode_cursor(cursor)
    assert caught.value.status == 400
    assert caught.value.field == "cursor"


def test_a_cursor_naming_an_index_beyond_any_item_index_is_refused_with_a_400():
    with pytest.raises(InvalidJob) as caught:
        decode_cursor(_raw(f"i:{2**40}"))
    assert caught.value.status == 400
