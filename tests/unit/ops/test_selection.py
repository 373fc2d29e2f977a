"""Choosing recorded messages and sketching jobs from task batches: pure rules."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.ops.streams.errors import OpsError
from services.ops.streams.positions import PartitionLag
from services.ops.streams.selection import Record, Selection
from services.ops.streams.sketch import add_batch
from sluice.contracts.events import TaskBatch, TaskItem

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _record(key: bytes | None, at: datetime, offset: int = 0) -> Record:
    return Record("t", 0, offset, int(at.timestamp() * 1000), key, b"{}")


def test_a_job_selection_takes_only_messages_keyed_by_that_job():
    job = uuid4()
    selection = Selection(job_id=job)
    assert selection.takes(_record(str(job).encode(), T0))
    assert not selection.takes(_record(str(uuid4()).encode(), T0))
    assert not selection.takes(_record(None, T0))


def test_a_time_range_includes_its_start_and_excludes_its_end():
    selection = Selection(since=T0, until=T0 + timedelta(minutes=1))
    assert selection.takes(_record(None, T0))
    assert not selection.takes(_record(None, T0 - timedelta(milliseconds=1)))
    assert not selection.takes(_record(None, T0 + timedelta(minutes=1)))


def test_an_offset_range_stops_at_the_partition_end_when_it_is_shorter():
    selection = Selection(from_offset=5, to_offset=50)
    assert selection.start_offset() == 5
    assert selection.stop_offset(20) == 20
    assert selection.stop_offset(100) == 50


@pytest.mark.parametrize(
    "kwargs",
    [
        {"since": T0, "until": T0},
        {"from_offset": 3, "to_offset": 3},
        {"since": datetime(2026, 1, 1)},
    ],
)
def test_empty_or_ambiguous_ranges_are_refused(kwargs):
    with pytest.raises(OpsError):
        Selection(**kwargs)


def _batch(job, index, size, generation=0):
    items = [TaskItem(index=index * 10 + i, input=i, generation=generation) for i in range(size)]
    return TaskBatch(tenant="acme", job_id=job, kind="bench.noop", batch_index=index, items=items, options={"a": 1})


def test_sketches_count_each_first_generation_batch_once_and_ignore_redrives():
    job = uuid4()
    sketches: dict = {}
    add_batch(sketches, _batch(job, 0, 10), 2000)
    add_batch(sketches, _batch(job, 1, 3), 1000)
    add_batch(sketches, _batch(job, 0, 10), 3000)  # published again by a retried submission
    add_batch(sketches, _batch(job, 0, 1, generation=1), 4000)  # a redrive of one item
    sketch = sketches[job]
    assert sketch.total_items == 13
    assert sketch.first_seen_ms == 1000
    new_job = sketch.new_job()
    assert (new_job.tenant, new_job.kind, new_job.options, new_job.total_batches) == ("acme", "bench.noop", {"a": 1}, 2)


def test_lag_is_what_the_group_has_not_committed_and_never_negative():
    assert PartitionLag(0, end=10, committed=4).lag == 6
    assert PartitionLag(0, end=10, committed=None).lag == 10
    assert PartitionLag(0, end=10, committed=12).lag == 0
