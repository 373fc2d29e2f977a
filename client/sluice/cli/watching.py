"""Following a job from the command line (``--watch``): a progress bar when stdout is a terminal, a plain line
per change when it is not, nothing but the final JSON with --json."""

import argparse
import os
import sys
import time
from typing import TextIO

from sluice.cli.common import emit_json, say
from sluice.cli.exits import FAILED, OK
from sluice.cli.progress import render_line, render_progress
from sluice.client import JobView, SluiceClient


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--watch", action="store_true",
        help="follow the job until it ends, over its live event stream; exit 1 unless it completed",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=seconds, metavar="SECONDS", help="with --watch: give up after this long (exit 5)"
    )


def seconds(text: str) -> float:
    """argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # replaced by an object without a file, or closed
        return False


class Display:
    """Shows each status of a watched job on ``out``: ``bar`` redraws one line, ``lines`` writes a line per change,
    ``quiet`` writes nothing."""

    def __init__(self, out: TextIO, mode: str) -> None:
        self.out, self.mode = out, mode
        self._started = time.monotonic()
        self._last = ""

    @classmethod
    def for_output(cls, out: TextIO, as_json: bool) -> "Display":
        return cls(out, "quiet" if as_json else "bar" if is_terminal(out) else "lines")

    def show(self, view: JobView) -> None:
        status = view.model_dump(mode="json")
        if self.mode == "bar":
            self._last = render_progress(status, time.monotonic() - self._started)
            self.out.write("\r" + self._last)
        elif self.mode == "lines" and (line := render_line(status)) != self._last:
            self._last = line
            self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        """End the bar's line (also when the watch was interrupted)."""
        if self.mode == "bar" and self._last:
            self.out.write("\n")
            self.out.flush()


def watch(sluice: SluiceClient, job_id: object, as_json: bool, timeout_s: float | None = None) -> int:
    """Follow the job to its end; exit 0 when it completed, 1 otherwise (WaitTimedOut past ``timeout_s``)."""
    display = Display.for_output(sys.stdout, as_json)
    try:
        final = sluice.wait(job_id, on_progress=display.show, timeout_s=timeout_s)
    finally:
        display.close()
    if as_json:
        emit_json(final.model_dump(mode="json"))
    else:
        c = final.counts
        say(f"job {final.job_id} {final.status.value}: {c.succeeded} ok, {c.failed} failed, "
            f"{c.timed_out} timed out, {c.cancelled} cancelled")  # fmt: skip
    return OK if final.status.value == "completed" else FAILED
