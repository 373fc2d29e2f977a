"""deploy/'s Grafana dashboard and Prometheus alert rules use only metrics the services export."""

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import PROMETHEUS_NAMES, RESCAN_STATS, SluiceMetrics

ROOT = Path(__file__).resolve().parents[3]
METRIC = re.compile(r"\bsluice_[a-z0-9_]+")
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def _alerts() -> list[dict[str, object]]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus-alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _family(series: str) -> str:
    for suffix in HISTOGRAM_SERIES:
        if series.endswith(suffix) and PROMETHEUS_NAMES.get(series.removesuffix(suffix)) == "histogram":
            return series.removesuffix(suffix)
    return series


def _exported_names() -> dict[str, str]:
    """Every instrument fed once and rendered, as Prometheus sees it: name → type."""
    metrics = SluiceMetrics()
    metrics.items_processed.add(1, {"kind": "k", "status": "succeeded"})
    metrics.items_retried.add(1, {"kind": "k"})
    metrics.jobs_finished.add(1, {"status": "completed"})
    metrics.dead_letters.add(1, {"topic": "t", "error_type": "E"})
    metrics.webhook_deliveries.add(1, {"outcome": "delivered"})
    metrics.handler_duration.record(0.1, {"kind": "k"})
    metrics.e2e_latency.record(1.0, {"kind": "k"})
    metrics.set_tenant_load("t", in_flight=1, waiting=2)
    metrics.count_rate_limited("t", "submissions")
    metrics.count_dependency_call("redis", "ok")
    metrics.watch_lag(lambda: [("topic", 0, "group", 3)])
    metrics.set_job_counts({"running": 1}, stalled=0)
    metrics.watch_sse_clients(lambda: 0)
    metrics.set_backlog({"normal": 2})
    metrics.set_rescan_stats({"t": dict.fromkeys(RESCAN_STATS, 1)})
    text = metrics.render().decode()
    names = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        names[name] = family.type
    return names


def test_the_declared_prometheus_names_are_exactly_what_the_metrics_module_exports():
    assert _exported_names() == PROMETHEUS_NAMES


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_in_deploy_is_one_the_services_export(source):
    exprs = [str(rule["expr"]) for rule in _alerts()] if source == "alerts" else _dashboard_exprs()
    used = {_family(name) for expr in exprs for name in METRIC.findall(expr)}
    assert used, "no sluice metric found: the regex or the file is wrong"
    assert used - set(PROMETHEUS_NAMES) == set()


def test_the_alert_rules_cover_lag_failures_latency_stalls_and_dead_letters():
    rules = {rule["alert"]: rule for rule in _alerts()}
    assert set(rules) == {
        "SluiceConsumerLagGrowing", "SluiceItemFailureRateHigh", "SluiceEndToEndLatencyHigh", "SluiceJobStalled",
        "SluiceDeadLettersGrowing",
    }  # fmt: skip
    assert rules["SluiceConsumerLagGrowing"]["for"] == "10m"
    failure_rate = rules["SluiceItemFailureRateHigh"]["expr"]
    assert "[1h]" in failure_rate and "> 0.05" in failure_rate
    assert "histogram_quantile(0.95" in rules["SluiceEndToEndLatencyHigh"]["expr"]
    assert all(rule["annotations"]["summary"] for rule in rules.values())


def test_compose_prometheus_scrapes_every_service_and_loads_the_alert_rules_it_mounts():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["prometheus"]["volumes"])
    assert all((ROOT / source).is_file() for source in mounts)
    assert set(config["rule_files"]) <= set(mounts.values())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["sluice-intake"]["static_configs"][0]["targets"] == ["intake:8000"]
    workers = jobs["sluice-workers"]["dns_sd_configs"][0]
    for name in workers["names"]:
        environment = compose["services"][name]["environment"]
        assert environment[f"SLUICE_{name.upper()}_METRICS_PORT"] == str(workers["port"])
        assert environment[f"SLUICE_{name.upper()}_METRICS_HOST"] == "0.0.0.0"
