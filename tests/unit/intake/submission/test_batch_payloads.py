"""The backlog payloads intake writes without a model per item are the TaskBatches the pydantic path wrote."""

import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice
from uuid import UUID, uuid4

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.logic import Fingerprint
from services.intake.submission.batches import encode_batches
from services.intake.submission.item_json import MAX_ITEM_DEPTH, encode_item
from services.intake.submission.spool import spool_ndjson
from shared.wire import WireTaskBatch, value_of
from sluice.contracts.events import MAX_BATCH_SIZE, Priority, TaskBatch, task_batch

# What orjson.loads reads back as it was written (larger integers come back as floats).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=12)
# How clients write NDJSON lines: compact or spaced, escaped or raw Unicode, CRLF or LF.
line_styles = st.sampled_from(
    [
        lambda v: orjson.dumps(v),
        lambda v: json.dumps(v).encode(),
        lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode(),
        lambda v: b"  " + json.dumps(v, indent=None, sort_keys=True).encode() + b"\r",
    ]
)


def _pydantic_batches(
    *, job_id: UUID, tenant: str, kind: str, options: dict, priority: Priority, items: Iterable, batch_size: int
) -> Iterator[TaskBatch]:
    """The path intake took before: every batch validated from JSON built of Python values (services/intake
    /logic.py's split_into_batches until the payloads were written as bytes)."""
    numbered = enumerate(items)
    batch_index = 0
    while chunk := list(islice(numbered, batch_size)):
        fields = {
            "tenant": tenant, "job_id": str(job_id), "kind": kind, "batch_index": batch_index, "options": options,
            "priority": priority, "items": [{"index": index, "input": item} for index, item in chunk],
        }  # fmt: skip
        yield task_batch.validate_json(orjson.dumps(fields))
        batch_index += 1


def _comparable(batch: TaskBatch) -> dict:
    return batch.model_dump(mode="json", exclude={"event_id", "occurred_at"})


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _identity(index, item):
    return item


def _wrap(index, item):
    return {"v": item, "at": index}


async def _spooled(lines: list[bytes], validate, chunk_size: int, fingerprint: Fingerprint):
    return await spool_ndjson(
        _chunks(b"\n".join(lines) + b"\n", chunk_size), validate=validate, fingerprint=fingerprint,
        max_items=10_000, max_line_bytes=1 << 20, max_item_bytes=1 << 19, memory_bytes=256,
    )  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.tuples(json_values, line_styles), min_size=1, max_size=40),
    options=st.dictionaries(st.text(), json_values, max_size=4),
    priority=st.sampled_from(list(Priority)),
    batch_size=st.integers(min_value=1, max_value=MAX_BATCH_SIZE).map(lambda n: n % 7 + 1 if n < 900 else n),
    validate=st.sampled_from([_identity, _wrap]),
    chunk_size=st.integers(min_value=1, max_value=4096),
)
async def test_an_uploads_payloads_are_task_batches_equal_to_what_the_pydantic_path_wrote(
    items, options, priority, batch_size, validate, chunk_size
):
    lines = [style(value) for value, style in items]
    fingerprint = Fingerprint("bench.noop", options, priority, None)
    spool = await _spooled(lines, validate, chunk_size, fingerprint)
    job = dict(job_id=uuid4(), tenant="acme", kind="bench.noop", options=options, priority=priority)
    try:
        payloads = [batch.payload for batch in encode_batches(**job, items=spool.encoded(), batch_size=batch_size)]
    finally:
        spool.close()
    fast = [task_batch.validate_json(payload) for payload in payloads]
    wire = [msgspec.json.decode(payload, type=WireTaskBatch) for payload in payloads]  # the processor's decoder
    normalised = [validate(index, orjson.loads(line)) for index, line in enumerate(lines)]
    expected = list(_pydantic_batches(**job, items=normalised, batch_size=batch_size))
    assert [_comparable(batch) for batch in fast] == [_comparable(batch) for batch in expected]
    assert [(i.index, value_of(i.input)) for b in wire for i in b.items] == [
        (i.index, i.input) for b in expected for i in b.items
    ]
    assert len({batch.event_id for batch in fast}) == len(fast)
    old_digest = hashlib.sha256(
        orjson.dumps(["bench.noop", options, priority.value, None], option=orjson.OPT_SORT_KEYS)
        + b"".join(orjson.dumps(item, option=orjson.OPT_SORT_KEYS) + b"\n" for item in normalised)
    )
    assert fingerprint.hexdigest() == old_digest.hexdigest()


def test_every_batch_records_its_index_and_item_count():
    batches = list(
        encode_batches(
            job_id=uuid4(), tenant="t", kind="k", options={}, priority=Priority.NORMAL,
            items=[encode_item(n) for n in range(7)], batch_size=3,
        )
    )  # fmt: skip
    assert [(batch.batch_index, batch.items) for batch in batches] == [(0, 3), (1, 3), (2, 1)]


def test_an_item_as_deep_as_the_limit_still_validates_as_a_task_batch():
    deepest = orjson.loads(b"[" * MAX_ITEM_DEPTH + b"]" * MAX_ITEM_DEPTH)
    (batch,) = encode_batches(
        job_id=uuid4(), tenant="t", kind="k", options={}, priority=Priority.NORMAL,
        items=[encode_item(deepest)], batch_size=1,
    )  # fmt: skip
    assert task_batch.validate_json(batch.payload).items[0].input == deepest


@pytest.mark.parametrize("batch_size", [0, MAX_BATCH_SIZE + 1])
def test_a_batch_size_outside_what_a_task_batch_holds_is_refused(batch_size):
    with pytest.raises(ValueError):
        next(
            encode_batches(
                job_id=uuid4(), tenant="t", kind="k", options={}, priority=Priority.NORMAL,
                items=[b"1"], batch_size=batch_size,
            )
        )  # fmt: skip
