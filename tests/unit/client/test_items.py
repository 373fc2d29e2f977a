"""Reading items from files and encoding them for intake: what a user's file turns into."""

import io
import json

import httpx
import pytest

from sluice.client import (
    ApiError,
    ItemsUnreadable,
    NotAuthorized,
    NotFound,
    ServiceUnavailable,
    auth_headers,
    read_items,
)
from sluice.client.items import detect_format
from sluice.client.protocol import JSON_ITEMS_MAX, check, ndjson_chunks, sends_as_json


def test_csv_rows_become_objects_keyed_by_the_header():
    stream = io.StringIO("url,depth\nhttps://a.example/,1\nhttps://b.example/,2\n")
    assert list(read_items(stream, "pages.csv")) == [
        {"url": "https://a.example/", "depth": "1"},
        {"url": "https://b.example/", "depth": "2"},
    ]


def test_jsonl_lines_are_json_values_and_blank_lines_are_skipped():
    stream = io.StringIO('{"n": 1}\n\n"two"\n3\n')
    assert list(read_items(stream, "items.jsonl")) == [{"n": 1}, "two", 3]


def test_a_bad_jsonl_line_is_named_by_its_number():
    with pytest.raises(ItemsUnreadable, match="line 2"):
        list(read_items(io.StringIO('{"n": 1}\n{oops\n'), "jsonl"))


def test_other_files_and_stdin_are_one_string_item_per_line():
    assert list(read_items(io.StringIO(" https://a.example/ \nhttps://b.example/\n"), "urls.txt")) == [
        "https://a.example/",
        "https://b.example/",
    ]
    assert detect_format("-") == "lines"
    assert detect_format("x.NDJSON") == "jsonl"


def test_short_lists_go_as_json_and_long_or_lazy_inputs_stream_as_ndjson():
    assert sends_as_json([1, 2, 3])
    assert not sends_as_json(list(range(JSON_ITEMS_MAX + 1)))
    assert not sends_as_json(iter([1, 2, 3]))


def test_ndjson_chunks_carry_every_item_once_in_order_in_bounded_chunks():
    items = [{"n": n, "text": "x" * 100} for n in range(5000)]
    chunks = list(ndjson_chunks(iter(items)))
    assert len(chunks) > 1
    assert all(len(chunk) < 2 * 64 * 1024 for chunk in chunks)
    lines = b"".join(chunks).decode().splitlines()
    assert [json.loads(line) for line in lines] == items


def test_auth_headers_send_the_key_as_bearer():
    assert auth_headers("k-123") == {"Authorization": "Bearer k-123"}
    assert auth_headers(None) == {}


@pytest.mark.parametrize(
    ("status", "error_type"), [(401, NotAuthorized), (403, NotAuthorized), (404, NotFound), (422, ApiError)]
)
def test_error_answers_become_typed_errors_with_intakes_message_and_field(status, error_type):
    body = {"error": {"code": "invalid_request", "message": "unknown kind 'x'", "field": "kind"}}
    response = httpx.Response(status, json=body, request=httpx.Request("GET", "http://intake/v1/jobs"))
    with pytest.raises(error_type) as raised:
        check(response)
    assert raised.value.status == status
    assert raised.value.field == "kind"
    assert "unknown kind 'x'" in str(raised.value)


def test_a_503_says_nothing_was_accepted_and_when_to_retry():
    body = {"error": {"code": "unavailable", "message": "broker unreachable", "field": "kafka"}}
    request = httpx.Request("POST", "http://intake/v1/jobs")
    with pytest.raises(ServiceUnavailable) as raised:
        check(httpx.Response(503, json=body, headers={"Retry-After": "7"}, request=request))
    assert raised.value.retry_after_s == 7.0
