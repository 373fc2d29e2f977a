"""What intake's REST API answers, as clients read it (the request bodies are validated by intake itself)."""

from pydantic import BaseModel


class JobAccepted(BaseModel):
    job_id: str
    status_url: str
    results_url: str
    total_items: int
    total_batches: int
    watch_id: str | None = None
    status: str = "queued"
    """queued, or waiting when the tenant is at its active-job limit (it starts by itself when a slot frees)."""
