"""Runs the Sluice services as child processes, relays their output prefixed [name], and stops them all."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from services.ops.devstack.errors import exit_description
from services.ops.devstack.process import descendants, kill_leftovers, signal_group

log = logging.getLogger("sluice.devstack")

SERVICE_NAMES = ("intake", "processor", "aggregator", "scheduler")


def service_command(name: str) -> list[str]:
    """How one Sluice service is run: `python -m services.<name>` with this interpreter."""
    return [sys.executable, "-m", f"services.{name}"]


@dataclass(frozen=True)
class ServiceExit:
    """A child that exited without being asked to, with its code and last output lines."""

    name: str
    exit_code: int
    log_tail: tuple[str, ...]


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    tail: deque[str]
    reader: threading.Thread | None = field(default=None)
    stopped: bool = False
    """Stopped on purpose: its exit is not reported as unexpected."""


class Supervisor:
    """Starts named commands in their own process groups; stop() ends them all (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        on_exit: Callable[[ServiceExit], None] | None = None,
        stop_timeout: float = 10.0,
        tail_lines: int = 40,
    ) -> None:
        self._out = out
        self._on_exit = on_exit
        self._stop_timeout = stop_timeout
        self._tail_lines = tail_lines
        self._children: dict[str, _Child] = {}
        self._exits: list[ServiceExit] = []
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        """Run argv as service `name` with env added to ours; relay its output lines as `[name] line`."""
        if name in self._children:
            raise ValueError(f"a service named {name!r} was already started")
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        child = _Child(name, proc, deque(maxlen=self._tail_lines))
        child.reader = threading.Thread(target=self._relay, args=(child,), name=f"relay-{name}", daemon=True)
        self._children[name] = child
        child.reader.start()
        log.debug("started service %s (pid %d)", name, proc.pid)

    @property
    def exits(self) -> list[ServiceExit]:
        """Children that exited unexpectedly so far, in the order noticed."""
        return list(self._exits)

    def pids(self) -> dict[str, int]:
        return {name: child.proc.pid for name, child in self._children.items()}

    def tail(self, name: str) -> list[str]:
        """The last output lines of one service."""
        return list(self._children[name].tail)

    def stop(self) -> None:
        """SIGTERM every child's group, wait up to stop_timeout in total, SIGKILL what is left; idempotent."""
        self._stopping.set()
        self._end(list(self._children.values()))

    def stop_one(self, name: str) -> None:
        """End one service as stop() ends them all; the others keep running."""
        child = self._children[name]
        child.stopped = True
        self._end([child])

    def _end(self, children: list[_Child]) -> None:
        family = [member for child in children for member in descendants(child.proc.pid)]
        for child in children:
            if child.proc.poll() is None:
                signal_group(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout
        for child in children:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("service %s ignored SIGTERM for %gs; killing it", child.name, self._stop_timeout)
                signal_group(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
            signal_group(child.proc.pid, signal.SIGKILL)  # grandchildren left in its group
        kill_leftovers(family)
        for child in children:
            if child.reader is not None:
                child.reader.join(timeout=5.0)

    def _relay(self, child: _Child) -> None:
        assert child.proc.stdout is not None
        with child.proc.stdout:
            for raw in child.proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                child.tail.append(line)
                self._write(f"[{child.name}] {line}\n")
        exit_code = child.proc.wait()
        if self._stopping.is_set() or child.stopped:
            return
        noticed = ServiceExit(child.name, exit_code, tuple(child.tail))
        self._exits.append(noticed)
        self._write(f"[{child.name}] exited unexpectedly with {exit_description(exit_code)}\n")
        if self._on_exit is not None:
            self._on_exit(noticed)

    def _write(self, text: str) -> None:
        out = self._out or sys.stdout
        with self._write_lock:
            out.write(text)
            out.flush()
