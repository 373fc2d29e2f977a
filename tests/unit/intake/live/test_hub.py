"""Live progress fan-out: what an SSE client receives, and a slow client's bounded queue."""

from uuid import uuid4

from services.intake.live.hub import CLIENT_QUEUE, JobEventHub, live_view
from shared.config import KafkaSettings
from sluice.contracts.events import JobCompleted, JobCounts, JobFailed, JobProgressed, JobStatus


def test_a_progress_event_becomes_running_with_its_percent_and_a_terminal_one_its_status_at_100():
    job_id = uuid4()
    counts = JobCounts(total=4, succeeded=1, failed=1)
    progress = live_view(JobProgressed(tenant="t", job_id=job_id, counts=counts, percent=50.0))
    assert (progress["status"], progress["percent"], progress["counts"]["done"]) == ("running", 50.0, 2)
    done = JobCounts(total=4, succeeded=3, failed=1)
    completed = live_view(JobCompleted(tenant="t", job_id=job_id, counts=done, status=JobStatus.PARTIALLY_FAILED))
    assert (completed["status"], completed["percent"]) == ("partially_failed", 100.0)
    failed = live_view(JobFailed(tenant="t", job_id=job_id, counts=done, reason="x"))
    assert failed["status"] == "failed"


def test_a_slow_clients_queue_keeps_the_newest_events_and_the_terminal_one():
    hub = JobEventHub(KafkaSettings(), client_id="test")
    job_id = uuid4()
    queue = hub.attach(job_id)
    other = hub.attach(uuid4())
    for n in range(CLIENT_QUEUE + 5):
        hub.publish({"type": "job.progress", "job_id": str(job_id), "percent": float(n)})
    hub.publish({"type": "job.completed", "job_id": str(job_id), "percent": 100.0})
    received = [queue.get_nowait() for _ in range(queue.qsize())]
    assert len(received) == CLIENT_QUEUE and received[-1]["type"] == "job.completed"
    assert received[0]["percent"] == 6.0, "the oldest progress events were dropped"
    assert other.empty()
    hub.detach(job_id, queue)
    assert hub.client_count() == 1
