"""The fast codecs agree with the contract: they accept only what the pydantic models accept, decode it to the
same values, and give the contract's reasons for what they refuse."""

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.wire import (
    WireBatchProcessed,
    WireTaskBatch,
    decode_results_message,
    decode_task_batch,
    encode,
    wire_batch_processed,
    wire_task_batch,
)
from sluice.contracts.events import (
    BatchProcessed,
    CancelJob,
    ItemResult,
    ItemStatus,
    TaskBatch,
    TaskItem,
    results_topic_message,
    task_batch,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
some_uuid = st.uuids().map(str)
some_time = st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat)
odd = st.sampled_from([None, True, -1, 0, 1.5, 1.0, "", "x", "7", [], {}, 2**40, "normal", "2026-01-01T00:00:00"])


def _fields(required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]):
    """Valid objects (the required fields, some optional ones), about half of them spoiled in one way: a field
    with an odd value, a required field missing, or a field the contract does not know."""
    objects = st.fixed_dictionaries(required, optional=optional)
    names = sorted({*required, *optional})
    spoil = st.one_of(
        st.none(), st.none(), st.none(),
        st.tuples(st.just("odd"), st.sampled_from(names), odd),
        st.tuples(st.just("drop"), st.sampled_from(sorted(required)), st.none()),
        st.tuples(st.just("extra"), st.just("surprise"), st.integers()),
    )  # fmt: skip
    return st.tuples(objects, spoil).map(lambda pair: _spoiled(*pair))


def _spoiled(body: dict[str, Any], spoil: tuple[str, str, Any] | None) -> dict[str, Any]:
    if spoil is None:
        return body
    how, name, value = spoil
    if how == "drop":
        return {k: v for k, v in body.items() if k != name}
    return {**body, name: value}


task_items = _fields(
    {"index": st.integers(0, 2**31), "input": json_values},
    {"attempt": st.integers(1, 9), "first_failed_at": some_time, "generation": st.integers(0, 9)},
)
task_batches = _fields(
    {"tenant": st.text(min_size=1, max_size=8), "job_id": some_uuid, "kind": st.text(max_size=8),
     "batch_index": st.integers(0, 99), "items": st.lists(task_items, min_size=0, max_size=3)},
    {"type": st.just("task.batch"), "event_id": some_uuid, "schema_version": st.just(1), "occurred_at": some_time,
     "options": st.dictionaries(st.text(max_size=4), json_values, max_size=2),
     "priority": st.sampled_from(["high", "normal", "bulk"])},
)  # fmt: skip
item_results = _fields(
    {"index": st.integers(0, 2**31), "status": st.sampled_from([s.value for s in ItemStatus])},
    {"input": json_values, "output": json_values, "error": st.text(max_size=5), "error_type": st.text(max_size=5),
     "attempts": st.integers(0, 9), "duration_ms": st.floats(0, 1e6), "generation": st.integers(0, 9),
     "fingerprint": st.text(max_size=300)},
)  # fmt: skip
results_messages = _fields(
    {"type": st.just("batch.processed"), "tenant": st.text(min_size=1, max_size=8), "job_id": some_uuid,
     "kind": st.text(max_size=8), "batch_index": st.integers(0, 99),
     "results": st.lists(item_results, min_size=0, max_size=3)},
    {"event_id": some_uuid, "schema_version": st.sampled_from([1, 2]), "occurred_at": some_time},
)  # fmt: skip


def _plain(message: msgspec.Struct, body: dict[str, Any]) -> Any:
    """A wire struct as the contract reads its encoding (defaults filled in), for comparing two decodings; the
    fields made fresh when the body has none (its id and time) are left out."""
    model = TaskBatch if isinstance(message, WireTaskBatch) else BatchProcessed
    plain = model.model_validate_json(encode(message)).model_dump(mode="json")
    return {k: v for k, v in plain.items() if k in body or k not in ("event_id", "occurred_at")}


def _decoders_agree(body, wire_type, contract_adapter, to_wire, fast_decode) -> None:
    """The fast decoder accepts only what the contract accepts and reads it alike (so does msgspec alone)."""
    raw = json.dumps(body).encode()
    try:
        strict = msgspec.json.decode(raw, type=wire_type)
    except msgspec.DecodeError:
        strict = None
    try:
        contract = contract_adapter.validate_json(raw)
    except ValidationError:
        assert strict is None, f"accepted what the contract refuses: {body}"
        return
    expected = _plain(to_wire(contract), body)
    assert _plain(fast_decode(raw), body) == expected
    if strict is not None:
        assert _plain(strict, body) == expected


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(task_batches)
def test_the_fast_task_batch_decoder_accepts_only_what_the_contract_accepts_and_reads_it_alike(body):
    _decoders_agree(body, WireTaskBatch, task_batch, wire_task_batch, decode_task_batch)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(results_messages)
def test_the_fast_results_decoder_accepts_only_what_the_contract_accepts_and_reads_it_alike(body):
    _decoders_agree(body, WireBatchProcessed, results_topic_message, wire_batch_processed, decode_results_message)


def _task_batch() -> TaskBatch:
    return TaskBatch(
        tenant="acme", job_id=uuid4(), kind="k", batch_index=4,
        items=[TaskItem(index=8, input={"u": 1}), TaskItem(index=9, input="two", attempt=2, generation=1)],
    )  # fmt: skip


def test_a_task_batch_decodes_to_its_own_fields_with_each_input_as_raw_json():
    batch = _task_batch()
    decoded = decode_task_batch(batch.model_dump_json().encode())
    assert (decoded.tenant, decoded.job_id, decoded.kind, decoded.batch_index) == ("acme", batch.job_id, "k", 4)
    assert [(i.index, bytes(i.input), i.attempt, i.generation) for i in decoded.items] == [
        (8, b'{"u":1}', 1, 0),
        (9, b'"two"', 2, 1),
    ]


def test_a_task_batch_the_strict_decoder_refuses_but_the_contract_coerces_is_still_read():
    body = json.loads(_task_batch().model_dump_json())
    body["batch_index"] = "4"  # the contract's lax mode reads a numeric string as a number
    assert decode_task_batch(json.dumps(body).encode()).batch_index == 4


@pytest.mark.parametrize("decoder", [decode_task_batch, decode_results_message])
@pytest.mark.parametrize("raw", [None, b""])
def test_an_empty_message_is_refused_as_empty(decoder, raw):
    with pytest.raises(ValueError, match="^empty message$"):
        decoder(raw)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{", b"[]", b"null"])
def test_garbage_is_refused_as_not_a_task_batch(raw):
    with pytest.raises(ValueError, match="^not a TaskBatch: "):
        decode_task_batch(raw)


def test_another_event_type_is_refused_as_not_a_task_batch():
    with pytest.raises(ValueError, match="^not a TaskBatch: "):
        decode_task_batch(CancelJob(tenant="acme", job_id=uuid4()).model_dump_json().encode())


def test_a_batch_with_no_items_is_refused_naming_the_items_field():
    body = json.loads(_task_batch().model_dump_json())
    body["items"] = []
    with pytest.raises(ValueError, match="items"):
        decode_task_batch(json.dumps(body).encode())


def test_a_batch_processed_message_decodes_to_its_fields_with_raw_json_input_and_output():
    sent = BatchProcessed(
        tenant="acme", job_id=uuid4(), kind="k", batch_index=3,
        results=[ItemResult(index=0, status=ItemStatus.SUCCEEDED, input=[1], output={"ok": True}, fingerprint="f")],
    )  # fmt: skip
    decoded = decode_results_message(sent.model_dump_json().encode())
    assert isinstance(decoded, WireBatchProcessed)
    assert (decoded.job_id, decoded.batch_index, decoded.event_id) == (sent.job_id, 3, sent.event_id)
    (result,) = decoded.results
    assert (result.status, bytes(result.input), bytes(result.output), result.fingerprint) == (
        ItemStatus.SUCCEEDED, b"[1]", b'{"ok":true}', "f",
    )  # fmt: skip


def test_a_cancel_command_decodes_to_its_command():
    sent = CancelJob(tenant="acme", job_id=uuid4(), reason="owner asked")
    decoded = decode_results_message(sent.model_dump_json().encode())
    assert isinstance(decoded, CancelJob)
    assert decoded == sent


@pytest.mark.parametrize("raw", [b"\x00\x01garbage", b"{not json", b"[]", b"42", b'"text"'])
def test_garbage_is_refused_as_not_a_results_topic_event(raw):
    with pytest.raises(ValueError, match="^not a results-topic event: "):
        decode_results_message(raw)


def test_an_event_meant_for_another_topic_is_refused_naming_the_type_field():
    with pytest.raises(ValueError, match="not a results-topic event") as caught:
        decode_results_message(_task_batch().model_dump_json().encode())
    assert "'task.batch'" in str(caught.value)
    assert "'batch.processed', 'job.cancel'" in str(caught.value)


def test_a_results_message_with_an_unexpected_field_is_refused_naming_it():
    body = json.loads(CancelJob(tenant="acme", job_id=uuid4()).model_dump_json())
    body["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        decode_results_message(json.dumps(body).encode())


def test_a_results_message_missing_its_job_is_refused_naming_the_field():
    body = json.loads(CancelJob(tenant="acme", job_id=uuid4()).model_dump_json())
    del body["job_id"]
    with pytest.raises(ValueError, match="job_id"):
        decode_results_message(json.dumps(body).encode())
