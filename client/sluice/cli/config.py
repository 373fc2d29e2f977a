"""The CLI's configuration: flags over environment over a TOML file over defaults (pure but for read_file)."""

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.errors import SluiceError

DEFAULT_URL = "http://127.0.0.1:8000"
FILE_KEYS = ("url", "api_key", "kafka_bootstrap_servers", "topic_prefix", "database_url")
ENV_KEYS = {
    "url": ("SLUICE_URL",),
    "api_key": ("SLUICE_API_KEY",),
    "kafka_bootstrap_servers": ("KAFKA_BOOTSTRAP_SERVERS", "SLUICE_KAFKA_BOOTSTRAP_SERVERS"),
    "topic_prefix": ("SLUICE_KAFKA_TOPIC_PREFIX",),
    "database_url": ("DATABASE_URL", "SLUICE_POSTGRES_URL"),
}
DEFAULTS = {
    "url": DEFAULT_URL,
    "api_key": None,
    "kafka_bootstrap_servers": "127.0.0.1:9092",
    "topic_prefix": "sluice",
    "database_url": "postgresql://postgres@127.0.0.1:5432/sluice",
}


class ConfigError(SluiceError):
    """The config file cannot be read or holds something unexpected."""


@dataclass(frozen=True)
class CliConfig:
    url: str
    api_key: str | None
    kafka_bootstrap_servers: str
    topic_prefix: str
    database_url: str


def config_path(env: Mapping[str, str]) -> Path:
    """SLUICE_CONFIG, else $XDG_CONFIG_HOME/sluice/config.toml, else ~/.config/sluice/config.toml."""
    if explicit := env.get("SLUICE_CONFIG"):
        return Path(explicit)
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "sluice" / "config.toml"


def parse_file(text: str, where: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(FILE_KEYS)})")
    for key, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string")
    return data


def resolve(flags: Mapping[str, str | None], env: Mapping[str, str], file_values: Mapping[str, Any]) -> CliConfig:
    values: dict[str, Any] = {}
    for key in FILE_KEYS:
        from_env = next((env[name] for name in ENV_KEYS[key] if env.get(name)), None)
        values[key] = flags.get(key) or from_env or file_values.get(key) or DEFAULTS[key]
    return CliConfig(**values)


def load(flags: Mapping[str, str | None], env: Mapping[str, str]) -> CliConfig:
    """The configuration for one command; a missing config file is fine, a broken one is an error."""
    path = config_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return resolve(flags, env, parse_file(text, str(path)) if text else {})
