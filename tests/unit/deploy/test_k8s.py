"""deploy/k8s agrees with itself, with docker-compose.yml and with what the code reads.

No cluster runs where these tests run, so they read the manifests: every Deployment runs the one image
with its service's module, gets every variable compose gives it (and only variables it reads), has
probes and resource requests and limits, a disruption budget and scrape annotations, and the processors scale
on each of their consumer groups' lag and on the PostgreSQL backlog, up to one replica per task partition.
"""

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from faststream.kafka import KafkaBroker

from services.intake.settings import IntakeSettings
from services.ops.settings_doc import all_env_vars, required_env
from services.processor.app import Runtime, register_handlers
from services.processor.settings import ProcessorSettings
from shared.config import KafkaSettings
from shared.kafka import topic_specs
from shared.metrics import PROMETHEUS_NAMES

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("intake", "processor", "aggregator", "scheduler")
RESOURCES = ("cpu", "memory")


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    documents = []
    for name in kustomization["resources"]:
        documents += [doc for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if doc]
    return documents


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _one(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in manifests if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _container(manifests: list[dict[str, Any]], name: str) -> dict[str, Any]:
    containers = _one(manifests, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _config(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    doc = _one(manifests, kind, name)
    return {key: str(value) for key, value in (doc.get("data") or doc.get("stringData") or {}).items()}


def _env(manifests: list[dict[str, Any]], name: str) -> dict[str, str]:
    """Every variable the container gets, with its value (secret values resolved from the Secret)."""
    container = _container(manifests, name)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        reference = source.get("configMapRef") or source.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        env.update(_config(manifests, kind, reference["name"]))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        ref = variable["valueFrom"].get("secretKeyRef") or variable["valueFrom"].get("configMapKeyRef")
        kind = "Secret" if "secretKeyRef" in variable["valueFrom"] else "ConfigMap"
        values = _config(manifests, kind, ref["name"])
        assert ref["key"] in values, f"{name}: {variable['name']} refers to a missing key {ref['key']}"
        env[variable["name"]] = values[ref["key"]]
    return env


def _compose_env(compose: dict[str, Any], name: str) -> set[str]:
    raw = compose["services"][name].get("environment") or {}
    return set(raw if isinstance(raw, dict) else (item.split("=", 1)[0] for item in raw))


def _project_version() -> str:
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("pyproject.toml has no version")


def test_kustomization_lists_every_manifest_in_the_folder(manifests):
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))["resources"])
    assert listed == {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_the_one_pinned_image_with_the_same_command_as_compose(manifests, compose, name):
    container = _container(manifests, name)
    images = {_container(manifests, service)["image"] for service in SERVICES}
    assert images == {f"sluice:{_project_version()}"}
    assert container["command"] == compose["services"][name]["command"] == ["python", "-m", f"services.{name}"]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_gets_what_compose_gives_it_and_only_variables_it_reads(manifests, compose, name):
    env = _env(manifests, name)
    known = all_env_vars()
    assert _compose_env(compose, name) <= env.keys()
    assert required_env(name) <= env.keys()
    for variable in env:
        assert variable in known and name in known[variable].services, f"{name} does not read {variable}"
    assert env["OTEL_SERVICE_NAME"] == f"sluice-{name}"


@pytest.mark.parametrize("name", SERVICES)
def test_connection_strings_come_from_the_secret_not_the_config_map(manifests, name):
    config = _config(manifests, "ConfigMap", "sluice-config")
    assert "DATABASE_URL" not in config and "REDIS_URL" not in config
    for variable in _container(manifests, name).get("env", []):
        if variable["name"] in ("DATABASE_URL", "REDIS_URL"):
            assert "secretKeyRef" in variable["valueFrom"]
    for key, value in _env(manifests, name).items():
        if key in ("DATABASE_URL", "REDIS_URL"):
            assert urlsplit(value).scheme in ("postgresql", "redis")


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_requests_limits_a_readiness_probe_and_runs_as_non_root(manifests, name):
    container = _container(manifests, name)
    for bound in ("requests", "limits"):
        assert set(RESOURCES) <= set(container["resources"][bound]), f"{name}: {bound} incomplete"
    assert container["readinessProbe"]
    pod = _one(manifests, "Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0


@pytest.mark.parametrize("name", SERVICES)
def test_each_deployment_selects_its_own_pods_and_has_a_disruption_budget(manifests, name):
    deployment = _one(manifests, "Deployment", name)
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    budget = _one(manifests, "PodDisruptionBudget", name)["spec"]
    assert budget["selector"]["matchLabels"] == selector
    assert budget.get("maxUnavailable") == 1 or budget.get("minAvailable", 0) < deployment["spec"]["replicas"]


def test_intake_probes_and_service_use_its_configured_port(manifests):
    container = _container(manifests, "intake")
    env = _env(manifests, "intake")
    port = int(env.get("SLUICE_INTAKE_PORT", IntakeSettings.model_fields["port"].default))
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["SLUICE_INTAKE_HOST"] == "0.0.0.0"
    assert named["http"] == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = _one(manifests, "Service", "intake")["spec"]
    assert (
        service["selector"].items()
        <= _one(manifests, "Deployment", "intake")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["ports"][0]["targetPort"] in ("http", port)


@pytest.mark.parametrize("name", ["processor", "aggregator", "scheduler"])
def test_workers_are_probed_on_the_metrics_port_they_are_told_to_open(manifests, name):
    container = _container(manifests, name)
    env = _env(manifests, name)
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert env[f"SLUICE_{name.upper()}_METRICS_PORT"] == str(port)
    assert env[f"SLUICE_{name.upper()}_METRICS_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def _processor_kafka(env: dict[str, str]) -> KafkaSettings:
    """The processors' Kafka settings as the manifests set them."""
    fields = KafkaSettings.model_fields
    return KafkaSettings(
        topic_prefix=env.get("SLUICE_KAFKA_TOPIC_PREFIX", fields["topic_prefix"].default),
        task_partitions=int(env.get("SLUICE_KAFKA_TASK_PARTITIONS", fields["task_partitions"].default)),
        retry_tiers_s=json.loads(env["SLUICE_KAFKA_RETRY_TIERS_S"]) if "SLUICE_KAFKA_RETRY_TIERS_S" in env
        else fields["retry_tiers_s"].get_default(call_default_factory=True),
    )  # fmt: skip


def _subscriptions(env: dict[str, str]) -> set[tuple[str, str]]:
    """(topic, consumer group) of every subscriber the processor registers with these settings."""
    group = env.get("SLUICE_PROCESSOR_GROUP_ID", ProcessorSettings.model_fields["group_id"].default)
    settings = ProcessorSettings(kafka=_processor_kafka(env), group_id=group)
    broker = KafkaBroker()
    register_handlers(broker, settings, Runtime())
    return {(topic, subscriber.group_id) for subscriber in broker.subscribers for topic in subscriber.topic_names}


def _triggers(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, str]]:
    triggers = _one(manifests, "ScaledObject", "processor")["spec"]["triggers"]
    return [trigger["metadata"] for trigger in triggers if trigger["type"] == kind]


def test_processors_scale_up_to_one_replica_per_partition_of_the_topics_they_read(manifests):
    scaled = _one(manifests, "ScaledObject", "processor")["spec"]
    kafka = _processor_kafka(_env(manifests, "processor"))
    partitions = {spec.name: spec.num_partitions for spec in topic_specs(kafka)}
    assert scaled["scaleTargetRef"]["name"] == "processor"
    assert {partitions[topic] for topic, _ in _subscriptions(_env(manifests, "processor"))} == {kafka.task_partitions}
    assert scaled["maxReplicaCount"] == kafka.task_partitions
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    assert {trigger["type"] for trigger in scaled["triggers"]} == {"kafka", "prometheus"}


def test_each_processor_group_scales_on_the_lag_of_its_own_topic(manifests):
    env = _env(manifests, "processor")
    triggers = _triggers(manifests, "kafka")
    assert {(trigger["topic"], trigger["consumerGroup"]) for trigger in triggers} == _subscriptions(env)
    assert len(triggers) == len(_subscriptions(env)), "one trigger per group"
    for trigger in triggers:
        assert trigger["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
        assert int(trigger["lagThreshold"]) >= 1
        assert trigger["allowIdleConsumers"] == "false"
        assert trigger["offsetResetPolicy"] == "earliest"  # the subscribers' auto_offset_reset


def test_processors_scale_on_the_backlog_the_leading_intake_exports(manifests):
    [trigger] = _triggers(manifests, "prometheus")
    assert set(re.findall(r"\bsluice_[a-z0-9_]+", trigger["query"])) == {"sluice_backlog_batches"}
    assert PROMETHEUS_NAMES["sluice_backlog_batches"] == "gauge"
    assert trigger["query"].replace(" ", "").startswith("sum("), "one value: the backlog over every priority"
    assert urlsplit(trigger["serverAddress"]).scheme in ("http", "https")
    assert float(trigger["threshold"]) >= 1


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_asks_to_be_scraped_on_the_port_that_serves_its_metrics(manifests, name):
    annotations = _one(manifests, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in _container(manifests, name)["ports"]}
    served_on = ports["http"] if name == "intake" else ports["metrics"]  # intake's app serves /metrics itself
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(served_on)
    assert annotations["prometheus.io/path"] == "/metrics"
