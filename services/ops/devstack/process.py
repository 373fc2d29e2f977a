"""A launched infrastructure process: own process group, a log file, a readiness wait and a sure stop."""

import logging
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from services.ops.devstack.errors import LaunchFailed

log = logging.getLogger("sluice.devstack")


@contextmanager
def launched(
    what: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    stop_signal: signal.Signals = signal.SIGTERM,
    stop_timeout: float = 5.0,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start argv in a new session (env added to ours), output to to log_path; stop its group on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
            cwd=cwd,
            **as_user(user),
        )
        log.debug("started %s (pid %d): %s", what, proc.pid, " ".join(argv))
        try:
            yield proc
        finally:
            stop_process_group(proc, stop_signal, stop_timeout)
            log.debug("stopped %s (pid %d, exit code %s)", what, proc.pid, proc.returncode)


def as_user(user: str | None) -> dict[str, Any]:
    """Popen keywords that run a child as `user` with only that user's own group (nothing if user is None)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def stop_process_group(proc: subprocess.Popen, stop_signal: signal.Signals, timeout: float) -> None:
    """Signal the process group, wait up to `timeout` seconds, then SIGKILL whatever is left of the family."""
    family = descendants(proc.pid)
    if proc.poll() is None:
        signal_group(proc.pid, stop_signal)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored %s for %gs; killing it", proc.pid, stop_signal.name, timeout)
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    signal_group(proc.pid, signal.SIGKILL)
    kill_leftovers(family)


def descendants(pid: int) -> list[psutil.Process]:
    """The process's children, grandchildren and so on, as they are now."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_leftovers(family: list[psutil.Process], timeout: float = 5.0) -> None:
    """SIGKILL any of `family` still alive (even ones that left the group) and wait until each is dead."""
    for member in family:
        try:
            member.kill()  # psutil checks it is still the same process, not a reused pid
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + timeout
    while survivors := [member for member in family if _alive(member)]:
        if time.monotonic() >= deadline:
            log.warning("pids %s survived SIGKILL for %gs", [member.pid for member in survivors], timeout)
            return
        time.sleep(0.02)  # poll interval inside the deadline


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE  # a zombie has stopped; only its parent can reap it
    except psutil.NoSuchProcess:
        return False


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send sig to every process in the group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def wait_until_ready(
    what: str,
    proc: subprocess.Popen,
    is_ready: Callable[[], bool],
    *,
    timeout: float,
    log_path: Path,
) -> None:
    """Poll is_ready() until true; LaunchFailed (with the log's tail) if proc exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LaunchFailed(what, f"exited with code {proc.returncode}", log_tail=log_tail(log_path))
        if is_ready() and proc.poll() is None:
            return
        if time.monotonic() >= deadline:
            raise LaunchFailed(what, f"not ready within {timeout:g}s", log_tail=log_tail(log_path))
        time.sleep(0.05)  # poll interval inside the deadline


def log_tail(log_path: Path, lines: int = 15) -> list[str]:
    """The last lines of a log file (empty if it does not exist)."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]


def process_listening_on(port: int) -> psutil.Process:
    """The process with a listening TCP socket on `port` (a launched broker, Redis...)."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return psutil.Process(connection.pid)
    raise LookupError(f"no process listens on port {port}")


class Paused:
    """SIGSTOP a process on entry, SIGCONT on exit: a dependency that hangs rather than refuses."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process

    def __enter__(self) -> "Paused":
        os.kill(self.process.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.kill(self.process.pid, signal.SIGCONT)
