"""Pure statistics and process sampling: percentiles, peak RSS and CPU time per service process."""

import asyncio
import math
import threading
import time
from collections.abc import Mapping, Sequence

import psutil

MB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def service_name(label: str) -> str:
    """`processor#2` → `processor`."""
    return label.split("#", 1)[0]


class RssSampler:
    """Samples the resident set size of named processes in a thread; `peaks_mb` is the largest seen of each,
    `cpu_s` the CPU time (user + system) each used while sampled: on a shared machine the CPU cost per item is
    a steadier measure than wall-clock speed."""

    def __init__(self, pids: Mapping[str, int], interval_s: float = 0.1) -> None:
        self._processes = {label: psutil.Process(pid) for label, pid in pids.items()}
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peaks_mb: dict[str, float] = {label: 0.0 for label in pids}
        self.cpu_s: dict[str, float] = {}

    def __enter__(self) -> "RssSampler":
        self._sample()
        self._cpu_at_start = self._cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        ended = self._cpu_times()
        self.cpu_s = {label: round(ended[label] - self._cpu_at_start[label], 2) for label in ended}

    def _cpu_times(self) -> dict[str, float]:
        used = {}
        for label, process in self._processes.items():
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            used[label] = times.user + times.system
        return used

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def _sample(self) -> None:
        for label, process in self._processes.items():
            try:
                rss = process.memory_info().rss / MB
            except psutil.Error:
                continue  # it exited; the run reports the failure elsewhere
            self.peaks_mb[label] = max(self.peaks_mb[label], round(rss, 1))


async def machine_quiet(busy_below_pct: float = 40.0, seconds: int = 3, timeout_s: float = 120.0) -> float:
    """Wait until the whole machine has used less than ``busy_below_pct`` % of one core for ``seconds`` seconds
    in a row (what the scenarios before left running, e.g. PostgreSQL's autovacuum of a million fresh rows, is
    done); returns the seconds waited. Gives up quietly after ``timeout_s``: the run then says so in its
    numbers, not by failing."""
    started = time.monotonic()
    quiet = 0
    psutil.cpu_percent()
    while quiet < seconds and time.monotonic() - started < timeout_s:
        await asyncio.sleep(1)  # one sampling window of the machine's CPU
        busy = psutil.cpu_percent() * (psutil.cpu_count() or 1)
        quiet = quiet + 1 if busy < busy_below_pct else 0
    return round(time.monotonic() - started, 1)
