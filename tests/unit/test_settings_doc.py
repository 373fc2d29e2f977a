"""The settings table lists every variable the services read, and docs/configuration.md carries the current table.

The expectation is derived independently of services.ops.settings_doc: each field of each instantiated settings
object is probed by setting a candidate variable and checking that the field changed.
"""

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from services.aggregator.settings import AggregatorSettings
from services.intake.settings import IntakeSettings
from services.ops.settings_doc import (
    BEGIN_MARKER,
    CONFIGURATION_PAGE,
    DIRECT_VARIABLES,
    END_MARKER,
    all_env_vars,
    embedded_table,
    main,
    required_env,
    settings_table,
)
from services.processor.settings import ProcessorSettings
from services.scheduler.settings import SchedulerSettings
from sluice.client.kafka_auth import InvalidKafkaAuth

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, type[BaseSettings]] = {
    "intake": IntakeSettings,
    "processor": ProcessorSettings,
    "aggregator": AggregatorSettings,
    "scheduler": SchedulerSettings,
}
FieldPath = tuple[str, ...]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Sluice, OTEL or connection variable from the caller's shell leaks into the probes."""
    known = set(all_env_vars())
    for name in list(os.environ):
        if name.upper() in known or name.upper().startswith(("SLUICE_", "OTEL_")):
            monkeypatch.delenv(name)
    return monkeypatch


def _fields(
    settings: BaseSettings, path: FieldPath = ()
) -> Iterator[tuple[FieldPath, type[BaseSettings], str, object]]:
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseSettings):
            yield from _fields(value, (*path, name))
        else:
            yield (*path, name), type(settings), name, value


def _candidate_names(cls: type[BaseSettings], name: str) -> list[str]:
    alias = cls.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [f"{cls.model_config.get('env_prefix', '')}{name}".upper()]


KAFKA_SECURITY = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "PLAIN",
    "KAFKA_SASL_USERNAME": "user",
    "KAFKA_SASL_PASSWORD": "secret",
    "KAFKA_SSL_CAFILE": "ca.pem",
    "KAFKA_SSL_CERTFILE": "client.pem",
    "KAFKA_SSL_KEYFILE": "client.key",
}
"""A complete secured configuration: the Kafka security settings are valid only together, so each is probed with
the others set (KafkaAuth refuses SASL credentials without a SASL protocol, a certificate without its key...)."""


def _companions(env: str) -> dict[str, str]:
    """What must be set with ``env`` (itself included, at a valid value the probe then changes) for the settings
    to be valid: the whole secured configuration, ``env`` standing in for its own field's conventional name."""
    conventional = env.removeprefix("SLUICE_")
    if conventional not in KAFKA_SECURITY or conventional == "KAFKA_SECURITY_PROTOCOL":
        return {}
    return {(env if name == conventional else name): value for name, value in KAFKA_SECURITY.items()}


def _candidate_values(annotation: object, value: object) -> list[str]:
    if get_origin(annotation) is Literal:
        return [str(choice) for choice in get_args(annotation) if choice != value]
    if literal := next((arg for arg in get_args(annotation) if get_origin(arg) is Literal), None):
        return [str(choice) for choice in get_args(literal) if choice != value]
    if isinstance(value, bool):
        return [str(not value).lower()]
    if isinstance(value, int):
        return [str(value + 1), str(value - 1)]
    if isinstance(value, float):
        return [str(value / 2), str(value * 2), "0.5"]
    if isinstance(value, list):
        return ['["probe.example"]', "[1]"]
    if value is None and int in get_args(annotation):
        return ["1"]
    return [f"{value}-probe" if value else "probe", "probe"]


def _get(settings: BaseSettings, path: FieldPath) -> object:
    value: object = settings
    for part in path:
        value = getattr(value, part)
    return value


def _configures(monkeypatch: pytest.MonkeyPatch, cls: type[BaseSettings], path: FieldPath, env: str, raw: str) -> bool:
    with monkeypatch.context() as probe:
        for name, value in _companions(env).items():
            probe.setenv(name, value)
        baseline = _get(cls(), path)
        probe.setenv(env, raw)
        try:
            return _get(cls(), path) != baseline
        except (ValidationError, InvalidKafkaAuth):
            return False


def _variables_each_service_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    readers: dict[str, set[str]] = {}
    for service, cls in SERVICES.items():
        for path, owner, name, value in _fields(cls()):
            annotation = owner.model_fields[name].annotation
            for env in _candidate_names(owner, name):
                values = _candidate_values(annotation, value)
                assert any(_configures(monkeypatch, cls, path, env, raw) for raw in values), (
                    f"{service}: setting {env} does not change {'.'.join(path)}"
                )
                readers.setdefault(env, set()).add(service)
    return readers


def _rows() -> dict[str, list[str]]:
    rows = {}
    for line in settings_table().splitlines()[2:]:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = [html.unescape(cell) for cell in cells]
    return rows


def test_table_lists_every_variable_each_service_reads_with_its_readers(clean_env):
    expected = _variables_each_service_reads(clean_env)
    only_direct = {name for name, _, _ in DIRECT_VARIABLES} - expected.keys()
    listed = {name: set(var.services) for name, var in all_env_vars().items() if name not in only_direct}
    assert listed == expected
    assert set(_rows()) == set(all_env_vars())


def test_each_row_shows_the_fields_default_description_and_bounds(clean_env):
    rows = _rows()
    for cls in SERVICES.values():
        for _, owner, name, value in _fields(cls()):
            field = owner.model_fields[name]
            for env in _candidate_names(owner, name):
                _, _, default, description = rows[env]
                if isinstance(value, bool):
                    assert default == f"`{str(value).lower()}`"
                elif isinstance(value, int | float | str):
                    assert default == f"`{value}`", env
                if field.description:
                    assert field.description in description
                for bound in (getattr(item, key, None) for item in field.metadata for key in ("ge", "gt", "le", "lt")):
                    if bound is not None:
                        assert f"{bound:,}" in description or str(bound) in description, (env, bound)


def test_shared_sections_appear_once_with_every_service_that_uses_them():
    names = list(all_env_vars())
    assert len(names) == len(set(names))
    assert all_env_vars()["SLUICE_POSTGRES_POOL_MAX"].services == ("intake", "aggregator", "scheduler")
    assert all_env_vars()["SLUICE_KINDS_WEB_MAX_LINKS"].services == ("intake", "processor")


def test_variables_read_directly_from_the_environment_are_in_the_table():
    reads = re.compile(
        r"""(?:environ\.get|getenv|environ\.setdefault)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
        r"""|environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
    )
    sources = [p for p in (ROOT / "shared").rglob("*.py") if "devstack" not in p.parts]
    sources += [p for service in SERVICES for p in (ROOT / "services" / service).rglob("*.py")]
    found = {a or b for path in sources for a, b in reads.findall(path.read_text(encoding="utf-8"))}
    assert found - set(all_env_vars()) == set()


def test_required_env_names_the_connection_strings_each_service_needs():
    assert required_env("intake") == {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL"}
    assert required_env("processor") == {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}
    assert required_env("aggregator") == {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
    assert required_env("scheduler") == {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}


def test_configuration_page_embeds_the_current_settings_table():
    text = (ROOT / CONFIGURATION_PAGE).read_text(encoding="utf-8")
    assert embedded_table(text) == settings_table(), (
        f"stale: run python -m services.ops.settings_doc --write {CONFIGURATION_PAGE}"
    )


def test_the_table_lives_only_on_the_configuration_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert BEGIN_MARKER not in readme and END_MARKER not in readme
    assert str(CONFIGURATION_PAGE) in readme, "the README links to the configuration page"


def test_write_replaces_only_the_text_between_the_markers(tmp_path):
    page = tmp_path / "configuration.md"
    page.write_text(
        f"# Configuration\n\nBefore.\n\n{BEGIN_MARKER}\n| old |\n{END_MARKER}\n\nAfter.\n", encoding="utf-8"
    )
    assert main(["--write", str(page)]) == 0
    written = page.read_text(encoding="utf-8")
    assert written.startswith(f"# Configuration\n\nBefore.\n\n{BEGIN_MARKER}\n")
    assert written.endswith(f"\n{END_MARKER}\n\nAfter.\n")
    assert embedded_table(written) == settings_table()
    assert main(["--write", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == written


@pytest.mark.parametrize(
    "content", ["# Configuration\n", f"# Configuration\n{BEGIN_MARKER}\n", f"{END_MARKER}\n{BEGIN_MARKER}\n", None]
)
def test_write_fails_without_a_pair_of_markers_and_leaves_the_file_alone(tmp_path, capsys, content):
    page = tmp_path / "configuration.md"
    if content is not None:
        page.write_text(content, encoding="utf-8")
    assert main(["--write", str(page)]) == 1
    assert str(page) in capsys.readouterr().err
    assert (page.read_text(encoding="utf-8") if content is not None else None) == content


def test_module_prints_the_table():
    result = subprocess.run(
        [sys.executable, "-m", "services.ops.settings_doc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == settings_table()
