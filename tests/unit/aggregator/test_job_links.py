"""The completion span's links: the job's most recent batch spans, bounded per job and in jobs remembered."""

from opentelemetry.trace import SpanContext


def _context(n: int) -> SpanContext:
    return SpanContext(trace_id=1, span_id=n, is_remote=False)


def test_a_finished_job_links_its_most_recent_batches_up_to_the_bound_and_is_then_forgotten():
    from services.aggregator.job_links import JobSpanLinks

    links = JobSpanLinks(per_job=3, jobs=10)
    for n in range(1, 6):
        links.remember("job", _context(n))
    assert [c.span_id for c in links.take("job")] == [3, 4, 5]
    assert links.take("job") == []


def test_the_least_recently_active_job_is_forgotten_first():
    from services.aggregator.job_links import JobSpanLinks

    links = JobSpanLinks(per_job=3, jobs=2)
    links.remember("a", _context(1))
    links.remember("b", _context(2))
    links.remember("a", _context(3))
    links.remember("c", _context(4))
    assert links.take("b") == []
    assert [c.span_id for c in links.take("a")] == [1, 3]
