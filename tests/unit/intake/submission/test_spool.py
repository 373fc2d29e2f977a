import json
from collections.abc import AsyncIterator, Iterable

import pytest

from services.intake.logic import Fingerprint
from services.intake.submission.item_json import MAX_ITEM_DEPTH
from services.intake.submission.spool import spool_ndjson
from shared.errors import InvalidItem, InvalidJob, LimitExceeded
from sluice.contracts.events import Priority

ITEMS = [{"url": "https://example.com/a"}, {"name": "Zoë — 東京 🚀"}, [1, 2, 3], "plain", 42, None]
UPLOAD = b"".join(json.dumps(item, ensure_ascii=False).encode() + b"\n" for item in ITEMS)


async def _chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _split_at(data: bytes, *cuts: int) -> list[bytes]:
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def _fingerprint() -> Fingerprint:
    return Fingerprint("test.kind", {}, Priority.NORMAL, None)


def _accept_all(index, item):
    return item


def _reject_negative(index, item):
    if isinstance(item, int) and item < 0:
        raise InvalidItem(index, "must not be negative")
    return item


async def _spool(
    parts, *, validate=_accept_all, max_items=1000, max_line_bytes=4096, max_item_bytes=2048, fingerprint=None
):
    return await spool_ndjson(
        _chunks(parts),
        validate=validate,
        fingerprint=fingerprint or _fingerprint(),
        max_items=max_items,
        max_line_bytes=max_line_bytes,
        max_item_bytes=max_item_bytes,
        memory_bytes=64,
    )


def _expected_digest(items) -> str:
    fingerprint = _fingerprint()
    for item in items:
        fingerprint.add_item(item)
    return fingerprint.hexdigest()


async def test_a_valid_upload_in_one_chunk_yields_every_item_in_order():
    fingerprint = _fingerprint()
    spool = await _spool([UPLOAD], fingerprint=fingerprint)
    assert spool.count == len(ITEMS)
    assert list(spool.items()) == ITEMS
    assert fingerprint.hexdigest() == _expected_digest(ITEMS)
    spool.close()


def _awkward_splits() -> list[list[bytes]]:
    multibyte = UPLOAD.index("ë".encode())
    emoji = UPLOAD.index("🚀".encode())
    newline = UPLOAD.index(b"\n")
    return [
        [UPLOAD[i : i + 1] for i in range(len(UPLOAD))],  # one byte at a time
        _split_at(UPLOAD, multibyte + 1),  # inside the two bytes of "ë"
        _split_at(UPLOAD, emoji + 1, emoji + 2, emoji + 3),  # through the four bytes of the emoji
        _split_at(UPLOAD, newline),  # just before a newline
        _split_at(UPLOAD, newline + 1),  # just after a newline
        [b"", UPLOAD[:10], b"", UPLOAD[10:], b""],  # empty chunks in between
    ]


@pytest.mark.parametrize(
    "parts",
    _awkward_splits(),
    ids=["bytewise", "in-2-byte-char", "in-4-byte-char", "before-newline", "after-newline", "empty-chunks"],
)
async def test_chunk_boundaries_anywhere_give_the_same_items_and_fingerprint(parts):
    assert b"".join(parts) == UPLOAD
    fingerprint = _fingerprint()
    spool = await _spool(parts, fingerprint=fingerprint)
    assert list(spool.items()) == ITEMS
    assert fingerprint.hexdigest() == _expected_digest(ITEMS)
    spool.close()


async def test_blank_and_whitespace_only_lines_are_skipped():
    spool = await _spool([b'\n{"a": 1}\n\n   \n\t\r\n{"a": 2}\n\n'])
    assert list(spool.items()) == [{"a": 1}, {"a": 2}]
    spool.close()


async def test_crlf_line_endings_are_accepted():
    spool = await _spool([b'{"a": 1}\r\n{"a": 2}\r\n'])
    assert list(spool.items()) == [{"a": 1}, {"a": 2}]
    spool.close()


async def test_a_last_line_without_a_newline_is_still_an_item():
    spool = await _spool([b'{"a": 1}\n{"a"', b": 2}"])
    assert list(spool.items()) == [{"a": 1}, {"a": 2}]
    spool.close()


async def test_bad_json_names_its_line_counting_blank_lines():
    with pytest.raises(InvalidJob) as caught:
        await _spool([b'{"a": 1}\n\n{"a": 2}\n{"a": \n{"a": 4}\n'])
    assert caught.value.field == "line 4"
    assert caught.value.reason.startswith("line 4: not valid JSON")
    assert caught.value.status == 422


async def test_bad_json_split_across_chunks_still_names_its_line():
    with pytest.raises(InvalidJob) as caught:
        await _spool([b'1\n2\n{"broken', b'": }\n4\n'])
    assert caught.value.field == "line 3"


async def test_an_invalid_item_names_its_line_and_the_validators_reason():
    with pytest.raises(InvalidJob) as caught:
        await _spool([b"1\n\n2\n-3\n4\n"], validate=_reject_negative)
    assert caught.value.field == "line 4"
    assert caught.value.reason == "line 4: item 2: must not be negative"


async def test_items_are_validated_with_their_item_index_not_their_line_number():
    seen = []

    def record(index, item):
        seen.append((index, item))
        return item

    spool = await _spool([b'\n\n"a"\n\n"b"\n'], validate=record)
    assert seen == [(0, "a"), (1, "b")]
    spool.close()


async def test_the_spool_holds_the_normalised_items_and_fingerprints_them():
    def wrap(index, item):
        return {"i": index, "v": item}

    fingerprint = _fingerprint()
    spool = await _spool([b"10\n20\n"], validate=wrap, fingerprint=fingerprint)
    normalised = [{"i": 0, "v": 10}, {"i": 1, "v": 20}]
    assert list(spool.items()) == normalised
    assert fingerprint.hexdigest() == _expected_digest(normalised)
    spool.close()


async def test_exactly_the_maximum_number_of_items_is_accepted():
    spool = await _spool([b"1\n2\n3\n\n"], max_items=3)
    assert spool.count == 3
    spool.close()


async def test_one_item_over_the_maximum_is_refused_as_a_413_naming_the_limit():
    with pytest.raises(LimitExceeded) as caught:
        await _spool([b"1\n2\n3\n4\n"], max_items=3)
    assert (caught.value.limit, caught.value.value, caught.value.maximum) == ("items", 4, 3)
    assert caught.value.status == 413


async def test_a_line_longer_than_the_limit_split_over_chunks_is_refused_naming_its_line():
    long_line = b'"' + b"x" * 100 + b'"\n'
    with pytest.raises(InvalidJob) as caught:
        await _spool([b"1\n", long_line[:40], long_line[40:80], long_line[80:]], max_line_bytes=32)
    assert caught.value.field == "line 2"
    assert "longer than 32 bytes" in caught.value.reason


async def test_a_final_line_without_newline_longer_than_the_limit_is_refused():
    with pytest.raises(InvalidJob) as caught:
        await _spool([b"1\n" + b'"' + b"x" * 100 + b'"'], max_line_bytes=32)
    assert caught.value.field == "line 2"


async def test_a_line_longer_than_the_limit_is_refused_even_when_it_arrives_in_one_chunk():
    with pytest.raises(InvalidJob) as caught:
        await _spool([b"1\n" + b'"' + b"x" * 100 + b'"\n' + b"3\n"], max_line_bytes=32)
    assert caught.value.field == "line 2"


async def test_a_line_of_exactly_the_limit_is_accepted_across_chunks():
    line = b'"' + b"x" * 30 + b'"'  # 32 bytes
    spool = await _spool([line[:16], line[16:], b"\n"], max_line_bytes=32)
    assert list(spool.items()) == ["x" * 30]
    spool.close()


@pytest.mark.parametrize("parts", [[], [b""], [b"\n\n  \n"]], ids=["no-chunks", "empty-chunk", "blank-lines"])
async def test_an_upload_without_items_is_refused(parts):
    with pytest.raises(InvalidJob) as caught:
        await _spool(parts)
    assert caught.value.field == "items"
    assert caught.value.reason == "the upload holds no items"


async def test_a_spool_larger_than_its_memory_budget_still_reads_back_every_item():
    items = [{"n": n, "pad": "y" * 50} for n in range(200)]
    upload = b"".join(json.dumps(item).encode() + b"\n" for item in items)
    spool = await _spool([upload])
    assert list(spool.items()) == items
    assert list(spool.items()) == items  # readable more than once
    spool.close()


async def test_items_are_spooled_as_compact_json_in_their_own_key_order():
    spool = await _spool([b'{"b": 1, "a": [1, 2]}\n{"a":1,"b":"\\u00e9"}\n{"a":1,"b":2}\r\n"x"\n'])
    assert list(spool.encoded()) == [b'{"b":1,"a":[1,2]}', '{"a":1,"b":"é"}'.encode(), b'{"a":1,"b":2}', b'"x"']
    spool.close()


async def test_a_validator_that_changes_the_item_in_place_has_its_change_spooled():
    def stamp(index, item):
        item["seen"] = True
        return item

    spool = await _spool([b'{"a":1}\n'], validate=stamp)
    assert list(spool.items()) == [{"a": 1, "seen": True}]
    spool.close()


async def test_the_item_size_limit_counts_the_items_compact_json_not_the_lines_spacing():
    spool = await _spool([b'[ "' + b"x" * 200 + b'" ]\n'], max_item_bytes=204)  # compact: ["x…x"], 204 bytes
    assert spool.count == 1
    spool.close()
    with pytest.raises(InvalidJob) as caught:
        await _spool([b"1\n" + b'["' + b"x" * 201 + b'"]\n'], max_item_bytes=204)
    assert caught.value.field == "line 2"
    assert caught.value.reason == "line 2: item 1: larger than the 204-byte limit per item"


async def test_an_item_nested_deeper_than_the_contracts_carry_is_refused_naming_its_line():
    deepest = b"[" * MAX_ITEM_DEPTH + b"]" * MAX_ITEM_DEPTH
    spool = await _spool([deepest + b"\n"])
    assert spool.count == 1
    spool.close()
    with pytest.raises(InvalidJob) as caught:
        await _spool([deepest + b"\n" + b"[" + deepest + b"]\n"])
    assert caught.value.field == "line 2"
    assert caught.value.reason == f"line 2: item 1: nested deeper than {MAX_ITEM_DEPTH} levels"


async def test_problems_on_one_line_are_named_in_line_order():
    upload = [b'1\n["' + b"x" * 300 + b'"]\n{bad\n']
    with pytest.raises(InvalidJob) as caught:
        await _spool(upload, max_item_bytes=256)
    assert caught.value.field == "line 2"
    with pytest.raises(LimitExceeded):
        await _spool([b"1\n2\n{bad\n"], max_items=2)


async def test_an_item_beyond_what_the_pipeline_can_store_is_not_spooled():
    def beyond_64_bits(index, item):
        return 2**64 + item

    with pytest.raises(TypeError):
        await _spool([b"1\n2\n"], validate=beyond_64_bits)
