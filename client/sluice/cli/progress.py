"""A one-line progress bar for a job's status, with rate and ETA (pure: status in, text out)."""

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
