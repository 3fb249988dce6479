"""A real Prometheus scrapes real PLBA metric endpoints; the dashboards check runs against it.

The endpoints are ``serve_metrics`` servers of a worker-like catalog (StreamMetrics +
FleetMetrics) and two node catalogs, kept busy by a thread that records plausible activity.
This proves the metric names, the exposition, the dashboards' PromQL and the check machinery
end to end; the pipeline-level test (a running worker and nodes) reuses the same fixture.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from agents.metrics import NodeMetrics
from agents.metrics import serve_metrics as serve_node_metrics
from plba.cli.main import cli
from plba.dashboards import DEFAULT_DASHBOARD_DIR, check_dashboards
from schemas.settings import REPO_ROOT
from streams.metrics import FleetMetrics, StreamMetrics, serve_metrics
from tests.integration.prom_fixture import ActivityThread, prometheus_server  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow

ALERTS = REPO_ROOT / "compose" / "prometheus" / "alerts.yml"


@pytest.fixture
def plba_endpoints():
    """A worker endpoint and two node endpoints on ephemeral ports, with activity running."""
    worker_reg, fleet_reg = CollectorRegistry(), CollectorRegistry()
    stream, fleet = StreamMetrics(worker_reg), FleetMetrics(fleet_reg)
    node_regs = [CollectorRegistry(), CollectorRegistry()]
    nodes = [NodeMetrics(reg, drivers=("sim",)) for reg in node_regs]
    servers = [serve_metrics([worker_reg, fleet_reg], 0)] + [serve_node_metrics(reg, 0) for reg in node_regs]
    try:
        with ActivityThread(stream, fleet, nodes):
            yield {
                "plba-worker": [f"127.0.0.1:{servers[0].port}"],
                "plba-node": [f"127.0.0.1:{s.port}" for s in servers[1:]],
            }
    finally:
        for server in servers:
            server.close()


def test_every_dashboard_panel_has_data_from_a_real_prometheus(prometheus_server, plba_endpoints, tmp_path):  # noqa: F811
    prom = prometheus_server(plba_endpoints, rule_files=[ALERTS])
    prom.wait_targets_up(3)
    assert prom.query('plba_build_info{component="node"}') and len(prom.query("plba_build_info")) == 3

    # Rates and quantiles need a few scrapes of moving counters before they have values.
    report = prom.wait_dashboards_have_data(timeout=90)
    assert report.dashboards == 5
    assert len(report.results) >= 40  # every panel with a query was evaluated

    # The alerting rules load and evaluate without error in the real Prometheus.
    groups = prom.api("/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 5
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]

    # The CLI says the same, in the documented JSON shape.
    out = CliRunner().invoke(cli, ["dashboards", "check", "--prometheus", prom.url, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["dashboards"] == 5 and doc["panels"] == len(report.results) and doc["empty"] == []


def test_a_panel_without_data_is_reported(prometheus_server, plba_endpoints, tmp_path):  # noqa: F811
    prom = prometheus_server(plba_endpoints)
    prom.wait_targets_up(3)
    folder = tmp_path / "dashboards"
    folder.mkdir()
    shutil.copy(DEFAULT_DASHBOARD_DIR / "fleet.json", folder / "fleet.json")
    bogus = {
        "uid": "bogus",
        "title": "Bogus",
        "panels": [
            {"id": 1, "type": "row", "title": "row", "panels": [
                {"id": 2, "type": "timeseries", "title": "Typo", "targets": [
                    {"refId": "A", "expr": "sum(plba_hot_nodes)"},
                    {"refId": "B", "expr": "sum(plba_hot_nodez)"},
                ]},
            ]},
            {"id": 3, "type": "stat", "title": "Syntax",
             "targets": [{"refId": "A", "expr": "sum(rate(plba_x[$__rate_interval]"}]},
            {"id": 4, "type": "stat", "title": "Hidden",
             "targets": [{"refId": "A", "expr": "nope_metric", "hide": True}]},
        ],
    }  # fmt: skip
    (folder / "bogus.json").write_text(json.dumps(bogus))

    def fleet_has_data() -> bool:
        return not [p for p in check_dashboards(prom.url, folder).empty if p.startswith("plba-fleet/")]

    prom.wait_until("the fleet panels to have data", fleet_has_data, timeout=60)
    report = check_dashboards(prom.url, folder)
    assert report.dashboards == 2
    assert report.empty == ["bogus/Typo", "bogus/Syntax"]
    details = report.to_dict()["details"]
    assert details["bogus/Typo"]["empty_targets"] == ["B"]
    assert "parse error" in details["bogus/Syntax"]["errors"]["A"]

    out = CliRunner().invoke(cli, ["dashboards", "check", "--prometheus", prom.url, "--dir", str(folder), "--json"])
    assert out.exit_code == 1
    assert json.loads(out.output)["empty"] == ["bogus/Typo", "bogus/Syntax"]
    out = CliRunner().invoke(cli, ["dashboards", "check", "--prometheus", prom.url, "--dir", str(folder)])
    assert out.exit_code == 1
    assert "EMPTY  bogus/Typo  (B: no data)" in out.output
    assert out.output.strip().endswith("2 dashboards, 11 panels, 2 without data")


def test_unreachable_prometheus_is_exit_2(tmp_path: Path):
    from tests.integration.prom_fixture import free_port

    out = CliRunner().invoke(cli, ["dashboards", "check", "--prometheus", f"http://127.0.0.1:{free_port()}"])
    assert out.exit_code == 2
    assert "cannot reach Prometheus" in out.output
