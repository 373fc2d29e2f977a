"""Topic names, all derived from one prefix (SLUICE_KAFKA_TOPIC_PREFIX, ``sluice`` by default)."""

from pydantic import BaseModel, ConfigDict


class TopicNames(BaseModel):
    """The topic names, derived from one prefix so a test or a deployment can have its own set."""

    model_config = ConfigDict(frozen=True)

    prefix: str
    requests: str
    tasks: str
    results: str
    job_events: str
    rejected: str
    """The requests topic's dead letters: invalid job requests, with the reason in a header."""
    tasks_dlq: str
    results_dlq: str

    @classmethod
    def for_prefix(cls, prefix: str) -> "TopicNames":
        return cls(
            prefix=prefix,
            requests=f"{prefix}.job-requests",
            tasks=f"{prefix}.tasks",
            results=f"{prefix}.results",
            job_events=f"{prefix}.job-events",
            rejected=f"{prefix}.rejected",
            tasks_dlq=f"{prefix}.tasks.dlq",
            results_dlq=f"{prefix}.results.dlq",
        )

    def retry(self, delay_s: int) -> str:
        """The retry topic of one delay tier."""
        return f"{self.prefix}.tasks.retry-{delay_s}s"

    @property
    def triggers(self) -> str:
        """External rescan triggers (RescanTrigger), consumed by the scheduler."""
        return f"{self.prefix}.triggers"

    @property
    def tasks_high(self) -> str:
        """High-priority task batches: their own topic, so they never queue behind normal ones on a partition."""
        return f"{self.prefix}.tasks.high"
