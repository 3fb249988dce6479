"""compose/prometheus: configs and alerting rules pass promtool, and the rules' own unit tests."""

from __future__ import annotations

import re
import subprocess

import yaml

from schemas.settings import REPO_ROOT
from tests.integration.prom_fixture import require_tool

PROM = REPO_ROOT / "compose" / "prometheus"


def _promtool(*args: str, cwd=PROM) -> str:  # type: ignore[no-untyped-def]
    promtool = require_tool("promtool")
    out = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"promtool {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_rules_are_valid():
    assert "SUCCESS: 8 rules found" in _promtool("check", "rules", "alerts.yml")


def test_rules_fire_as_their_unit_tests_say():
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")


def test_every_alert_is_unit_tested():
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert alerts == tested


def test_local_config_is_valid():
    _promtool("check", "config", "prometheus.local.yml")


def test_compose_config_is_valid(tmp_path):
    # In the container the rules sit at /etc/prometheus/alerts.yml; point at the real file here.
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config["rule_files"] = [str(PROM / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    _promtool("check", "config", str(tmp_path / "prometheus.yml"), cwd=tmp_path)


def test_compose_scrapes_every_plba_service_on_its_metrics_port():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] if job["job_name"].startswith("plba-")
               for sc in job["static_configs"] for t in sc["targets"]}  # fmt: skip
    compose = yaml.safe_load((REPO_ROOT / "compose" / "docker-compose.yml").read_text())
    expected = set()
    for name, service in compose["services"].items():
        port = (service.get("environment") or {}).get("PLBA_METRICS_PORT")
        if port is not None:
            expected.add(f"{name}:{port}")
    assert expected and targets == expected
    # The alert on targets down selects jobs by this prefix.
    assert all(re.match(r"^plba-|^prometheus$", job["job_name"]) for job in config["scrape_configs"])
