"""A secured Kafka cluster's pieces: TLS certificates, SCRAM users, listener settings and ACL changes."""

import re
import shutil
import ssl
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.ops.devstack.errors import KafkaToolFailed, OpensslMissing
from services.ops.devstack.ports import LOOPBACK

ADMIN_USER = "admin"
BROKER_USER = "broker"
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
CERT_DAYS = 3650
_PLAIN_TOKEN = re.compile(r"^[A-Za-z0-9._~-]+$")
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass(frozen=True)
class KafkaSecurity:
    """Clients must use SASL_SSL with one of these SCRAM users (name -> password); ACLs are enforced."""

    users: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, password in self.users.items():
            if name in (ADMIN_USER, BROKER_USER):
                raise ValueError(f"user name {name!r} is reserved for the cluster itself")
            if not (_PLAIN_TOKEN.match(name) and _PLAIN_TOKEN.match(password)):
                # the storage tool's --add-scram syntax has no quoting for ',', ']' or '='
                raise ValueError(f"user {name!r}: names and passwords may use only letters, digits and ._~-")


@dataclass(frozen=True)
class TlsFiles:
    """A CA certificate clients trust, and the brokers' PEM key store (key, certificate, CA) it signed."""

    ca_file: Path
    keystore: Path


def make_certificates(tls_dir: Path) -> TlsFiles:
    """A CA and a broker certificate for localhost and 127.0.0.1, made once in tls_dir and then reused."""
    files = TlsFiles(ca_file=tls_dir / "ca.pem", keystore=tls_dir / "broker.pem")
    if files.ca_file.is_file() and files.keystore.is_file():
        return files
    openssl = shutil.which("openssl")
    if openssl is None:
        raise OpensslMissing()
    tls_dir.mkdir(parents=True, exist_ok=True)
    key, csr, cert, ca_key = (tls_dir / name for name in ("broker.key", "broker.csr", "broker.crt", "ca.key"))
    new_ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(openssl, "req", "-x509", *new_ec_key, "-keyout", ca_key, "-out", files.ca_file, "-days", CERT_DAYS,
             "-subj", "/CN=Sluice dev Kafka CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    _openssl(openssl, "req", "-new", *new_ec_key, "-keyout", key, "-out", csr, "-subj", "/CN=localhost",
             "-addext", f"subjectAltName=DNS:localhost,IP:{LOOPBACK}")  # fmt: skip
    _openssl(openssl, "x509", "-req", "-in", csr, "-CA", files.ca_file, "-CAkey", ca_key, "-CAcreateserial",
             "-copy_extensions", "copy", "-days", CERT_DAYS, "-out", cert)  # fmt: skip
    # Kafka's PEM key store wants an unencrypted PKCS#8 key followed by the certificate chain, in one file.
    files.keystore.write_text(key.read_text() + cert.read_text() + files.ca_file.read_text())
    files.keystore.chmod(0o600)
    return files


def _openssl(openssl: str, *args: object) -> None:
    done = subprocess.run([openssl, *map(str, args)], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise KafkaToolFailed(f"openssl {args[0]}", f"exited with code {done.returncode}",
                              output_tail=done.stderr.splitlines()[-10:])  # fmt: skip


def client_ssl_context(ca_file: Path) -> ssl.SSLContext:
    """An SSL context that trusts only the cluster's own CA (and checks the broker's host name)."""
    return ssl.create_default_context(cafile=str(ca_file))


def scram_format_arguments(users: Mapping[str, str]) -> list[str]:
    """`kafka-storage format` arguments that create each user with a SHA-512 and a SHA-256 SCRAM credential."""
    arguments = []
    for name, password in users.items():
        for mechanism in SCRAM_MECHANISMS:
            arguments += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return arguments


def secured_listener_properties(broker_password: str, tls: TlsFiles) -> dict[str, str]:
    """Broker settings: SCRAM over TLS for clients, PLAIN for broker-to-broker and controller traffic, ACLs."""
    plain_jaas = (
        f'{_PLAIN_MODULE} required username="{BROKER_USER}" password="{broker_password}" '
        f'user_{BROKER_USER}="{broker_password}";'
    )
    # SCRAM credentials live in the metadata log, which controllers need before they can read it: so the
    # controller listener (and, for simplicity, the internal one) authenticate with PLAIN against a static JAAS user.
    properties = {
        "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "listener.name.client.sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
        "listener.name.client.ssl.keystore.type": "PEM",
        "listener.name.client.ssl.keystore.location": str(tls.keystore),
        "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.internal.plain.sasl.jaas.config": plain_jaas,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain_jaas,
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{BROKER_USER};User:{ADMIN_USER}",
    }
    for mechanism in SCRAM_MECHANISMS:
        properties[f"listener.name.client.{mechanism.lower()}.sasl.jaas.config"] = f"{_SCRAM_MODULE} required;"
    return properties


def admin_client_properties(admin_password: str, ca_file: Path) -> dict[str, str]:
    """Java client settings (for Kafka's command-line tools) that log in as the super user over SASL_SSL."""
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": SCRAM_MECHANISMS[0],
        "sasl.jaas.config": f'{_SCRAM_MODULE} required username="{ADMIN_USER}" password="{admin_password}";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca_file),
    }


def acl_arguments(
    principal: str,
    operations: Sequence[str],
    *,
    topics: Sequence[str] = (),
    groups: Sequence[str] = (),
    transactional_ids: Sequence[str] = (),
    cluster: bool = False,
) -> list[str]:
    """AclCommand arguments that allow `principal` ("User:alice") each operation on each named resource."""
    if not (topics or groups or transactional_ids or cluster):
        raise ValueError("name at least one resource (a topic, group, transactional id or the cluster)")
    arguments = ["--add", "--allow-principal", principal]
    for operation in operations:
        arguments += ["--operation", operation]
    for option, names in (("--topic", topics), ("--group", groups), ("--transactional-id", transactional_ids)):
        for name in names:
            arguments += [option, name]
    return arguments + (["--cluster"] if cluster else [])
