from uuid import uuid4

from services.aggregator.logic import ProgressThrottle
from shared.records import JobState
from sluice.contracts.events import JobCounts, JobStatus


def _state(job_id=None, status=JobStatus.RUNNING) -> JobState:
    return JobState(job_id or uuid4(), "acme", status, JobCounts(total=10, succeeded=1))


def test_the_first_progress_of_a_job_goes_through():
    throttle = ProgressThrottle(interval_s=1.0)
    state = _state()
    assert throttle.due([state], now=100.0) == [state]


def test_progress_within_the_interval_is_held_back():
    throttle = ProgressThrottle(interval_s=1.0)
    state = _state()
    throttle.due([state], now=100.0)
    assert throttle.due([state], now=100.5) == []
    assert throttle.due([state], now=100.999) == []


def test_progress_goes_through_again_once_the_interval_has_passed():
    throttle = ProgressThrottle(interval_s=1.0)
    state = _state()
    throttle.due([state], now=100.0)
    assert throttle.due([state], now=101.0) == [state]
    assert throttle.due([state], now=101.5) == []
    assert throttle.due([state], now=102.0) == [state]


def test_held_progress_does_not_push_the_next_release_further_away():
    throttle = ProgressThrottle(interval_s=1.0)
    state = _state()
    throttle.due([state], now=100.0)
    for now in (100.2, 100.4, 100.6, 100.8):
        throttle.due([state], now=now)
    assert throttle.due([state], now=101.0) == [state]


def test_each_job_is_throttled_on_its_own():
    throttle = ProgressThrottle(interval_s=1.0)
    a, b = _state(), _state()
    assert throttle.due([a], now=100.0) == [a]
    assert throttle.due([a, b], now=100.1) == [b]


def test_finished_jobs_get_no_progress_and_are_forgotten():
    throttle = ProgressThrottle(interval_s=1.0)
    job_id = uuid4()
    throttle.due([_state(job_id)], now=100.0)
    finished = _state(job_id, JobStatus.COMPLETED)
    assert throttle.due([finished], now=100.1) == []
    # Forgotten: a later running state of the same id is treated as new, not held back.
    again = _state(job_id)
    assert throttle.due([again], now=100.2) == [again]


def test_the_throttle_remembers_at_most_its_capacity_forgetting_the_oldest():
    throttle = ProgressThrottle(interval_s=10.0, capacity=2)
    a, b, c = _state(), _state(), _state()
    throttle.due([a], now=1.0)
    throttle.due([b], now=2.0)
    throttle.due([c], now=3.0)
    # a was evicted, so it is due again; b and c are still remembered and held.
    assert throttle.due([b, c], now=4.0) == []
    assert throttle.due([a], now=4.0) == [a]
    # Remembering a again evicted b, the oldest.
    assert throttle.due([b], now=4.5) == [b]


def test_a_zero_interval_lets_every_progress_through():
    throttle = ProgressThrottle(interval_s=0)
    state = _state()
    assert [throttle.due([state], now=5.0) for _ in range(3)] == [[state]] * 3
