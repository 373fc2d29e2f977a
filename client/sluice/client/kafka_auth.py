"""How a Kafka client authenticates: security protocol, SASL mechanism and credentials, and TLS files, read from
the usual ``KAFKA_*`` variables. Every Kafka client Sluice has (services, CLI, SDK, replay, bench) takes one."""

import logging
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

from sluice.errors import Refused, SluiceError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

ENV_NAMES = {
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password": "KAFKA_SASL_PASSWORD",
    "ssl_cafile": "KAFKA_SSL_CAFILE",
    "ssl_certfile": "KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "KAFKA_SSL_KEYFILE",
}
"""Each setting's environment variable, the names Kafka's own tools and most clients document."""


class InvalidKafkaAuth(SluiceError):
    """The Kafka security settings contradict each other or name a file that can't be read."""


class KafkaAuth(BaseModel):
    """A Kafka client's security settings; PLAINTEXT (none) by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    """The CA that signed the brokers' certificates; the system's trusted CAs when unset."""
    ssl_certfile: Path | None = None
    """A client certificate (mutual TLS), with ssl_keyfile."""
    ssl_keyfile: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "KafkaAuth":
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(f"{self.security_protocol} needs a SASL mechanism, a username and a password")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(f"SASL credentials are given but the security protocol is {self.security_protocol}")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError(f"TLS files are given but the security protocol is {self.security_protocol}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("a client certificate needs both ssl_certfile and ssl_keyfile")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "KafkaAuth":
        """From KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD,
        KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE; InvalidKafkaAuth naming the problem."""
        values = {field: environ[name] for field, name in ENV_NAMES.items() if environ.get(name)}
        return cls.parse(values)

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> "KafkaAuth":
        """Validated settings; InvalidKafkaAuth with the first problem instead of a ValidationError."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = str(first.get("ctx", {}).get("error", first["msg"]))
            raise InvalidKafkaAuth(f"Kafka security settings: {where + ': ' if where else ''}{message}") from exc

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL (trusting ssl_cafile, or the system's CAs); None otherwise."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
            if self.ssl_certfile and self.ssl_keyfile:
                context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidKafkaAuth(f"Kafka TLS files unusable: {exc}") from exc
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if context := self.ssl_context():
            options["ssl_context"] = context
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return options

    def describe(self) -> str:
        """One line for errors and logs, without the password: "SASL_SSL, SCRAM-SHA-512 as 'intake'"."""
        if self.sasl_mechanism:
            return f"{self.security_protocol}, {self.sasl_mechanism} as {self.sasl_username!r}"
        return self.security_protocol


class KafkaRefused(Refused):
    """The broker answered and turned us away (wrong credentials, an untrusted certificate): retrying won't help."""


_REFUSALS = ("AuthenticationFailed", "SaslAuthenticationFailed", "UnsupportedSaslMechanism", "CERTIFICATE_VERIFY")


class _RefusalWatcher(logging.Handler):
    """Keeps the first reason aiokafka logs for refusing a connection (it raises only "Unable to bootstrap")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.reason is None and any(marker in message for marker in _REFUSALS):
            self.reason = message.split(": ", 1)[-1][:300]


@contextmanager
def explaining_refusals(bootstrap: str, auth: KafkaAuth) -> Iterator[None]:
    """Within the block, an aiokafka client that fails to start because the broker refused it raises KafkaRefused
    naming the listener, the protocol and mechanism, and the broker's reason; other failures pass unchanged."""
    logger, watcher = logging.getLogger("aiokafka"), _RefusalWatcher()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(watcher)
    logger.setLevel(logging.ERROR if level == logging.NOTSET or level > logging.ERROR else level)
    logger.propagate = False  # the reason goes into our one-line error, not a log line beside it
    try:
        yield
    except Exception as exc:
        if watcher.reason is None:
            raise
        raise KafkaRefused(
            f"Kafka at {bootstrap} ({auth.describe()}) refused the connection: {watcher.reason}"
        ) from exc
    finally:
        logger.removeHandler(watcher)
        logger.setLevel(level)
        logger.propagate = propagate


class KafkaConnection(BaseModel):
    """Where a Kafka client connects and how it authenticates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str
    auth: KafkaAuth = KafkaAuth()

    def client_options(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client, plus ``extra``."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.auth.client_options(), **extra}
