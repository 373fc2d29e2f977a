"""A job's progress as text, pure (status in, text out): a one-line bar with rate and ETA for a terminal, and a
plain line for a pipe or a log."""

from typing import Any

BAR_WIDTH = 30


def render_progress(status: dict[str, Any], elapsed_s: float) -> str:
    counts = status.get("counts", {})
    total = max(int(counts.get("total", 0)), 1)
    done = total - int(counts.get("pending", total))
    filled = int(BAR_WIDTH * done / total)
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = status.get("eta_seconds")
    eta_text = "--" if eta is None else f"{eta:.0f}s"
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {status.get('percent', 0.0):5.1f}%  "
        f"{done}/{total}  ok {counts.get('succeeded', 0)}  failed {counts.get('failed', 0)}  "
        f"{rate:6.0f} items/s  ETA {eta_text}  {status.get('status', '')}   "
    )


def render_line(status: dict[str, Any]) -> str:
    """One line per change, for output that is not a terminal: no bar, no carriage return."""
    counts = status.get("counts", {})
    total = int(counts.get("total", 0))
    done = total - int(counts.get("pending", total))
    return (
        f"job {status.get('job_id', '')} {status.get('status', '')} {status.get('percent', 0.0):.1f}% "
        f"({done}/{total}) ok {counts.get('succeeded', 0)} failed {counts.get('failed', 0)} "
        f"timed out {counts.get('timed_out', 0)} cancelled {counts.get('cancelled', 0)}"
    )
