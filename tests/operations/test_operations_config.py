"""config/: the Prometheus rules and the Grafana dashboard parse, and name only metrics the server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from authserver.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bauthserver_[a-z0-9_]+")
RECORDED = re.compile(r"\bauthserver:[a-z0-9_:]+")


def exported_names() -> set[str]:
    metrics = Metrics()
    metrics.observe_request("/token", "POST", 429, 0.1)
    metrics.token_issued("client_credentials", "c")
    metrics.security_event("login", "failure")
    metrics.security_event("mfa_totp", "failure")
    metrics.set_pool(1, 2)
    metrics.set_pool_capacity(20)
    metrics.set_emergency(True)
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    metrics.set_key_ages([("kid", "ES256", "active", now)], now)
    text = metrics.exposition()[0].decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_alert_rules_parse_and_cover_the_service_objectives() -> None:
    rules = yaml.safe_load((ROOT / "config/prometheus/alerts.yml").read_text())
    all_rules = [rule for group in rules["groups"] for rule in group["rules"]]
    alerts = {rule["alert"]: rule for rule in all_rules if "alert" in rule}
    recorded = {rule["record"] for rule in all_rules if "record" in rule}
    for name in ("AuthserverHighErrorRate", "AuthserverHighLatencyP95", "AuthserverErrorBudgetFastBurn", "AuthserverErrorBudgetSlowBurn",
                 "AuthserverEmergencyMode"):
        assert name in alerts
    assert alerts["AuthserverHighErrorRate"]["for"] == "5m" and "0.01" in alerts["AuthserverHighErrorRate"]["expr"]
    assert "0.5" in alerts["AuthserverHighLatencyP95"]["expr"]
    assert "0.001" in alerts["AuthserverErrorBudgetFastBurn"]["expr"]
    exported = exported_names()
    for rule in all_rules:
        assert set(METRIC.findall(rule["expr"])) <= exported, rule
        assert set(RECORDED.findall(rule["expr"])) <= recorded, rule
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"page", "ticket"}
        anchor = alert["annotations"]["runbook_url"].split("#")[1]
        assert anchor in runbook_anchors(), anchor


def runbook_anchors() -> set[str]:
    text = (ROOT / "docs/runbook.md").read_text()
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def test_grafana_dashboard_queries_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "config/grafana/authserver-dashboard.json").read_text())
    rules = yaml.safe_load((ROOT / "config/prometheus/alerts.yml").read_text())
    recorded = {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}
    exported = exported_names()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        assert set(METRIC.findall(expr)) <= exported, expr
        assert set(RECORDED.findall(expr)) <= recorded, expr
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("latency", "sign-in", "mfa", "rate-limit", "signing-key", "database pool", "tokens issued"):
        assert topic in titles, topic


def test_prometheus_scrape_config_loads_the_rules() -> None:
    config = yaml.safe_load((ROOT / "config/prometheus/prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]
    assert config["scrape_configs"][0]["job_name"] == "authserver"


def test_monitoring_compose_mounts_the_rules_and_dashboard() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.monitoring.yml").read_text())
    services = compose["services"]
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in ("config/prometheus/alerts.yml", "config/prometheus/prometheus.yml", "config/grafana/authserver-dashboard.json"):
        assert f"./{path}" in mounts and (ROOT / path).exists()
    assert "PROMETHEUS_MULTIPROC_DIR" in services["authserver"]["environment"]
