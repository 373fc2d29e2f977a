"""Which batch spans a job's completion span links to: the most recent ones this process recorded, bounded."""

from collections import OrderedDict, deque

from opentelemetry.trace import SpanContext

LINKS_PER_JOB = 32
"""A completion span links at most this many batch spans (the job's most recent batches in this process)."""
JOBS_REMEMBERED = 2000
"""Unfinished jobs whose batch spans are remembered; the least recently active are forgotten first."""


class JobSpanLinks:
    def __init__(self, per_job: int = LINKS_PER_JOB, jobs: int = JOBS_REMEMBERED) -> None:
        self._per_job = per_job
        self._jobs = jobs
        self._links: OrderedDict[object, deque[SpanContext]] = OrderedDict()

    def remember(self, job_id: object, context: SpanContext) -> None:
        spans = self._links.get(job_id)
        if spans is None:
            spans = self._links[job_id] = deque(maxlen=self._per_job)
        spans.append(context)
        self._links.move_to_end(job_id)
        while len(self._links) > self._jobs:
            self._links.popitem(last=False)

    def take(self, job_id: object) -> list[SpanContext]:
        """The remembered batch spans of a job that just finished (and forget them)."""
        return list(self._links.pop(job_id, ()))
