"""docker-compose.yml, deploy/Dockerfile and the collector and Grafana configs agree with each other and with the
settings.

No Docker engine runs where these tests run, so they read the files: every claim compose makes about a
service (its image, command, variables, dependencies) is checked against what the code actually reads.
"""

import json
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.intake.settings import IntakeSettings
from services.ops.settings_doc import all_env_vars, required_env

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("intake", "processor", "aggregator", "scheduler")
CONNECTION_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def collector_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text(encoding="utf-8"))


def _env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, from short-form port strings like "127.0.0.1:9094:9094"."""
    pairs = (str(port).split("/")[0].rsplit(":", 2)[-2:] for port in service.get("ports", []))
    return {int(container): int(host) for host, container in pairs}


def _listeners(value: str) -> dict[str, str]:
    """KAFKA_*LISTENERS "NAME://host:port,..." as {NAME: "host:port"}."""
    return dict(item.split("://", 1) for item in value.split(","))


def _service_with_image(compose: dict[str, Any], prefix: str) -> str:
    names = [name for name, svc in compose["services"].items() if str(svc.get("image", "")).startswith(prefix)]
    assert len(names) == 1, f"expected one service running {prefix}*, found {names}"
    return names[0]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on", {})
    if isinstance(raw, list):  # short form means "started", never "healthy"
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def _pinned(image: str) -> bool:
    tag = image.rpartition(":")[2] if ":" in image else ""
    return bool(tag) and tag != "latest"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_builds_the_shared_image_and_runs_its_own_module(compose, name):
    service = compose["services"][name]
    build = service["build"]
    assert (ROOT / build["context"]).resolve() == ROOT
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == ROOT / "deploy" / "Dockerfile"
    assert _command(service) == ["python", "-m", f"services.{name}"]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_command_names_a_runnable_module(name):
    assert (ROOT / "services" / name / "__init__.py").is_file()
    assert (ROOT / "services" / name / "__main__.py").is_file(), f"python -m services.{name} has no __main__.py"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_gets_the_connections_it_needs_and_a_trace_name(compose, collector_config, name):
    env = _env(compose["services"][name])
    assert required_env(name) <= env.keys()
    assert env["OTEL_SERVICE_NAME"] == f"sluice-{name}"
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    collector = _service_with_image(compose, "otel/opentelemetry-collector")
    http_receiver = collector_config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert (endpoint.scheme, endpoint.hostname) == ("http", collector)
    assert endpoint.port == int(http_receiver.rpartition(":")[2])


@pytest.mark.parametrize("name", SERVICES)
def test_kafka_address_is_the_brokers_internal_listener(compose, name):
    kafka = _env(compose["services"]["kafka"])
    advertised = _listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    internal = advertised[kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert internal.partition(":")[0] == _service_with_image(compose, "apache/kafka")
    assert _env(compose["services"][name])["KAFKA_BOOTSTRAP_SERVERS"] == internal


@pytest.mark.parametrize("name", [name for name in SERVICES if "DATABASE_URL" in required_env(name)])
def test_database_url_names_the_postgres_service_user_and_database(compose, name):
    host = _service_with_image(compose, "postgres:")
    postgres = _env(compose["services"][host])
    url = urlsplit(_env(compose["services"][name])["DATABASE_URL"])
    assert url.scheme in {"postgresql", "postgres"}
    assert (url.hostname, url.port or 5432) == (host, 5432)
    assert (url.username, url.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert url.path == f"/{postgres['POSTGRES_DB']}"


@pytest.mark.parametrize("name", [name for name in SERVICES if "REDIS_URL" in required_env(name)])
def test_redis_url_names_the_redis_service(compose, name):
    url = urlsplit(_env(compose["services"][name])["REDIS_URL"])
    assert (url.scheme, url.hostname, url.port or 6379) == (
        "redis",
        _service_with_image(compose, "redis:"),
        6379,
    )


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_waits_for_its_connections_to_be_healthy(compose, name):
    env, waits = _env(compose["services"][name]), _depends_on(compose["services"][name])
    for variable in required_env(name) & set(CONNECTION_VARIABLES):
        value = env[variable]
        host = urlsplit(value).hostname if "://" in value else value.split(",")[0].rpartition(":")[0]
        assert waits.get(host) == "service_healthy", f"{name} reaches {host} via {variable} without waiting for it"


def test_every_dependency_exists_and_healthy_ones_have_a_health_check(compose):
    services = compose["services"]
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), f"{target} has no health check"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_sets_only_variables_the_service_reads(compose, name):
    known = all_env_vars()
    for variable in _env(compose["services"][name]):
        assert variable in known, f"{name}: {variable} is read by no service"
        assert name in known[variable].services, f"{name}: {variable} is read only by {known[variable].services}"


def test_kafka_runs_kraft_from_the_official_image(compose):
    name = _service_with_image(compose, "apache/kafka:")
    kafka = compose["services"][name]
    image_version = tuple(int(part) for part in re.findall(r"\d+", kafka["image"].rpartition(":")[2])[:2])
    assert image_version >= (3, 9)
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert f"{env['KAFKA_NODE_ID']}@{name}:" in voters[0] and len(voters) == 1
    listeners, advertised = _listeners(env["KAFKA_LISTENERS"]), _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    assert set(listeners) <= set(protocols)
    assert set(advertised) <= set(listeners)
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    test = " ".join(kafka["healthcheck"]["test"])
    assert "kafka-broker-api-versions.sh" in test or "kafka-topics.sh" in test


def test_kafka_is_reachable_from_the_host_on_localhost_9094(compose):
    kafka = compose["services"]["kafka"]
    assert "localhost:9094" in _listeners(_env(kafka)["KAFKA_ADVERTISED_LISTENERS"]).values()
    assert _published(kafka).get(9094) == 9094


def test_postgres_and_redis_are_pinned_health_checked_and_postgres_keeps_its_data(compose):
    postgres = compose["services"][_service_with_image(compose, "postgres:")]
    redis = compose["services"][_service_with_image(compose, "redis:")]
    assert postgres["image"] == "postgres:17" and redis["image"] == "redis:7"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    data = [v.split(":")[0] for v in postgres["volumes"] if v.split(":")[1] == "/var/lib/postgresql/data"]
    assert data and data[0] in (compose.get("volumes") or {})


def test_intake_listens_on_all_interfaces_and_is_health_checked_on_its_port(compose):
    intake = compose["services"]["intake"]
    env = _env(intake)
    port = int(env.get("SLUICE_INTAKE_PORT", IntakeSettings.model_fields["port"].default))
    assert env["SLUICE_INTAKE_HOST"] == "0.0.0.0"
    assert port in _published(intake)
    test = intake["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{port}/healthz" in test[3]


def test_processor_runs_two_replicas(compose):
    assert compose["services"]["processor"]["deploy"]["replicas"] == 2


def test_collector_sends_traces_to_jaeger_and_the_debug_exporter(compose, collector_config):
    collector = compose["services"][_service_with_image(compose, "otel/opentelemetry-collector-contrib:")]
    jaeger_name = _service_with_image(compose, "jaegertracing/")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in collector["volumes"]}
    config_path = next(arg.split("=", 1)[1] for arg in _command(collector) if arg.startswith("--config="))
    assert (ROOT / mounts[config_path]).resolve() == ROOT / "deploy" / "otel-collector.yaml"
    traces = collector_config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(traces.get(kind, [])) <= set(collector_config.get(kind) or {}), f"undefined {kind}"
    exporters = {name: collector_config["exporters"][name] for name in traces["exporters"]}
    assert any(name.split("/")[0] == "debug" for name in exporters)
    otlp = [spec for name, spec in exporters.items() if name.split("/")[0] in {"otlp", "otlp_grpc"}]
    assert [spec["endpoint"] for spec in otlp] == [f"{jaeger_name}:4317"]
    assert "otlp" in traces["receivers"]
    assert 16686 in _published(compose["services"][jaeger_name])


def test_third_party_images_are_pinned(compose):
    for name, service in compose["services"].items():
        if "image" in service:
            assert _pinned(service["image"]), f"{name} runs an unpinned image {service['image']}"


# --- Prometheus and Grafana ----------------------------------------------------------------------

GRAFANA_PROVISIONING = PurePosixPath("/etc/grafana/provisioning")


def _mounts(service: dict[str, Any]) -> dict[PurePosixPath, Path]:
    """Container path -> the repository file bind-mounted there (read-only, as every config mount must be)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        assert options == ["ro"], f"{volume} is not mounted read-only"
        mounts[PurePosixPath(target)] = (ROOT / source).resolve()
    return mounts


def _provisioned(grafana: dict[str, Any], kind: str) -> dict[str, Any]:
    """The one provisioning file of ``kind`` (datasources, dashboards) compose mounts, parsed."""
    files = [source for target, source in _mounts(grafana).items() if target.parent == GRAFANA_PROVISIONING / kind]
    assert len(files) == 1, f"expected one {kind} provisioning file, found {files}"
    assert files[0].is_relative_to(ROOT / "deploy" / "grafana") and files[0].is_file()
    return yaml.safe_load(files[0].read_text(encoding="utf-8"))


def _listen_port(prometheus: dict[str, Any]) -> int:
    flags = [arg for arg in _command(prometheus) if arg.startswith("--web.listen-address=")]
    return int(flags[-1].rpartition(":")[2]) if flags else 9090


def test_grafana_queries_the_compose_prometheus_as_its_default_datasource(compose):
    grafana = compose["services"][_service_with_image(compose, "grafana/grafana:")]
    prometheus_name = _service_with_image(compose, "prom/prometheus:")
    prometheus_port = _listen_port(compose["services"][prometheus_name])
    [datasource] = _provisioned(grafana, "datasources")["datasources"]
    url = urlsplit(datasource["url"])
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    assert (url.scheme, url.hostname, url.port) == ("http", prometheus_name, prometheus_port)
    assert prometheus_name in _depends_on(grafana)


def test_grafana_loads_the_repository_dashboard_from_the_folder_compose_mounts_it_in(compose):
    grafana = compose["services"][_service_with_image(compose, "grafana/grafana:")]
    [provider] = _provisioned(grafana, "dashboards")["providers"]
    folder = PurePosixPath(provider["options"]["path"])
    dashboards = {target: source for target, source in _mounts(grafana).items() if target.parent == folder}
    assert provider["type"] == "file"
    assert list(dashboards.values()) == [ROOT / "deploy" / "grafana-dashboard.json"]
    assert PurePosixPath(_env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]) in dashboards
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus", "the panels pick the provisioned datasource's type"
    assert _published(grafana).get(3000) == 3000


# --- deploy/Dockerfile and .dockerignore ---------------------------------------------------------


def _dockerfile() -> list[list[str]]:
    """Instructions as token lists, with line continuations joined and comments dropped."""
    text = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _final_stage() -> list[list[str]]:
    instructions = _dockerfile()
    last_from = max(i for i, tokens in enumerate(instructions) if tokens[0].upper() == "FROM")
    return instructions[last_from:]


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for tokens in _dockerfile():
        if tokens[0].upper() == "COPY" and not any(token.startswith("--from") for token in tokens):
            sources += [token for token in tokens[1:-1] if not token.startswith("--")]
    return sources


def _dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in (p for p in patterns if p and not p.startswith("#")):
        negated, pattern = pattern.startswith("!"), pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def test_image_is_python_311_slim_and_runs_as_a_non_root_user():
    froms = [tokens[1] for tokens in _dockerfile() if tokens[0].upper() == "FROM"]
    assert froms and all(image == "python:3.11-slim" for image in froms)
    users = [tokens[1] for tokens in _final_stage() if tokens[0].upper() == "USER"]
    assert users, "the final stage never switches away from root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_image_installs_the_project_without_extras():
    installs = [tokens for tokens in _dockerfile() if tokens[0].upper() == "RUN" and "install" in tokens]
    targets = [token for tokens in installs for token in tokens[tokens.index("install") + 1 :]]
    assert "." in targets, "no `pip install .`"
    assert not any(t.startswith(".[") or t in {"-e", "--editable"} or t.startswith("-r") for t in targets)


def test_dockerfile_copies_files_that_exist_and_reach_the_build_context():
    sources = _copy_sources()
    for source in sources:
        if any(char in source for char in "*?["):
            continue  # a glob may match nothing, by design (README.md* before the README exists)
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        probe = next((ROOT / source).rglob("*.py"), None) if (ROOT / source).is_dir() else ROOT / source
        assert probe is not None and not _dockerignored(probe.relative_to(ROOT).as_posix()), f"{source} ignored"
    assert any(re.fullmatch(source.replace("*", ".*"), "README.md") for source in sources)


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    for path in (".venv/bin/python", ".git/HEAD", "tests/unit/test_x.py", "shared/__pycache__/config.pyc"):
        assert _dockerignored(path), f"{path} would be sent to the Docker daemon"
