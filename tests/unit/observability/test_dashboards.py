"""Dashboards as code: drift, names that exist, the check's substitution and data rules."""

from __future__ import annotations

import json
import random
import re

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import NodeMetrics
from plba.cli.main import cli
from plba.dashboards import (
    DEFAULT_DASHBOARD_DIR,
    builtins,
    has_data,
    iter_panels,
    load_dashboards,
    substitute,
    template_values,
)
from schemas.settings import REPO_ROOT
from streams.metrics import FleetMetrics, StreamMetrics
from tests.integration.prom_fixture import IN_CI, exercise

GRAFANA = REPO_ROOT / "compose" / "grafana"


def _sdk_or_skip() -> None:
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("grafana-foundation-sdk is not installed (a test dependency of the dashboards generator)")
        pytest.skip("grafana-foundation-sdk is not installed")


def test_committed_json_is_what_the_spec_generates():
    _sdk_or_skip()
    from plba import dashboards_gen

    assert dashboards_gen.drift() == []
    out = CliRunner().invoke(cli, ["dashboards", "generate", "--check"])
    assert out.exit_code == 0, out.output


def test_drift_is_detected(tmp_path):
    _sdk_or_skip()
    from plba import dashboards_gen

    dashboards_gen.generate(tmp_path)
    assert dashboards_gen.main(["--check", "--dir", str(tmp_path)]) == 0
    model = json.loads((tmp_path / "fleet.json").read_text())
    model["panels"][1]["title"] = "edited by hand"
    (tmp_path / "fleet.json").write_text(json.dumps(model))
    (tmp_path / "stray.json").write_text("{}")
    assert dashboards_gen.drift(tmp_path) == ["fleet.json", "stray.json"]
    out = CliRunner().invoke(cli, ["dashboards", "generate", "--check", "--dir", str(tmp_path)])
    assert out.exit_code == 1 and "fleet.json" in out.output


def _exposed_names() -> set[str]:
    regs = [CollectorRegistry() for _ in range(3)]
    exercise(StreamMetrics(regs[0]), FleetMetrics(regs[1]), [NodeMetrics(regs[2])], random.Random(3), 1e6)
    names = {"up"}
    for reg in regs:
        for family in text_string_to_metric_families(generate_latest(reg).decode()):
            names.update(s.name for s in family.samples)
    return names


_METRIC = re.compile(r"\b((?:plba|process|python)_[a-z0-9_]+)\b")


def _used_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for name, model in load_dashboards(DEFAULT_DASHBOARD_DIR):
        exprs = [t.expr for p in iter_panels(name, model) for t in p.targets]
        exprs += [v.get("query", "") for v in model["templating"]["list"] if v.get("type") == "query"]
        used[name] = {m for e in exprs for m in _METRIC.findall(e)}
    rules = yaml.safe_load((REPO_ROOT / "compose" / "prometheus" / "alerts.yml").read_text())
    used["alerts.yml"] = {m for g in rules["groups"] for r in g["rules"] for m in _METRIC.findall(r["expr"])}
    return used


def test_every_metric_a_dashboard_or_alert_uses_is_exported():
    exposed = _exposed_names()
    for where, names in _used_names().items():
        missing = sorted(names - exposed)
        assert not missing, f"{where} queries metrics nobody exports: {missing}"


def test_dashboards_are_well_formed():
    dashboards = load_dashboards(DEFAULT_DASHBOARD_DIR)
    assert sorted(uid for uid, _ in dashboards) == [
        "plba-decisions", "plba-fleet", "plba-forecast", "plba-migrations", "plba-pipeline",
    ]  # fmt: skip
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    for name, model in dashboards:
        panels = list(iter_panels(name, model))
        titles = [p.title for p in panels]
        assert len(titles) == len(set(titles)), f"{name}: duplicate panel titles"
        for p in panels:
            refs = [t.ref_id for t in p.targets]
            assert len(refs) == len(set(refs)), p.name
            for t in p.targets:
                # Every rate-like range must come from a variable, never a hard-coded window.
                assert not re.search(r"\[\d+[smhd]\]", t.expr), f"{p.name}: hard-coded range in {t.expr}"
        ds_var = [v for v in model["templating"]["list"] if v["type"] == "datasource"]
        assert ds_var and ds_var[0]["current"]["value"] == uid
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"


def test_the_provider_reads_where_compose_mounts_the_dashboards():
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "plba.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((REPO_ROOT / "compose" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("rate(x[$__rate_interval])", "rate(x[5m])"),
        ("increase(x[$__range]) / $__range_s", "increase(x[1h]) / 3600"),
        ("x[$__interval] offset $__interval_ms", "x[1m] offset 60000"),
        ('x{node=~"$node", r="${resource}", m="${mode:regex}", o="[[old]]"}', 'x{node=~".*", r="cpu", m="a|b", o="v"}'),
        ('x{y="$unknown"}', 'x{y="$unknown"}'),
        ("$nodes_total", "$nodes_total"),  # a longer name is not $node + "s_total"
    ],
)
def test_substitute(expr, expected):
    values = {**builtins("5m", "1m", "1h"), "node": ".*", "resource": "cpu", "mode": "a|b", "old": "v"}
    assert substitute(expr, values) == expected


def test_template_values():
    model = {
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "current": {"value": "plba-prometheus"}},
                {"name": "resource", "type": "custom", "query": "cpu,memory", "current": {"value": "memory"}},
                {"name": "subject", "type": "custom", "query": "node, workload"},
                {"name": "node", "type": "query", "multi": True, "includeAll": True, "allValue": ".*",
                 "current": {"value": ["$__all"]}},
                {"name": "two", "type": "custom", "multi": True, "current": {"value": ["a", "b"]}},
                {"name": "one", "type": "custom", "multi": True, "current": {"value": ["a"]}},
            ]
        }
    }  # fmt: skip
    values = template_values(model, {"resource": "io"})
    assert values == {
        "datasource": "plba-prometheus", "resource": "io", "subject": "node", "node": ".*", "two": ".*", "one": "a",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"resultType": "vector", "result": []}, False),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}, False),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}, {"value": [1, "0"]}]}, True),
        ({"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "NaN"], [2, "+Inf"]]}]}, True),
        ({"resultType": "matrix", "result": [{"metric": {}, "values": []}]}, False),
        ({"resultType": "scalar", "result": [1, "1"]}, True),
        ({"resultType": "scalar", "result": [1, "NaN"]}, False),
    ],
)
def test_has_data(data, expected):
    assert has_data({"status": "success", "data": data}) is expected


def test_check_refuses_bad_input(tmp_path):
    out = CliRunner().invoke(cli, ["dashboards", "check", "--prometheus", "localhost:9090"])
    assert out.exit_code == 2 and "http://" in out.output
    out = CliRunner().invoke(cli, ["dashboards", "check", "--prometheus", "http://x", "--rate-interval", "5 minutes"])
    assert out.exit_code == 2 and "not a duration" in out.output
    out = CliRunner().invoke(cli, ["dashboards", "check", "--prometheus", "http://x", "--var", "novalue"])
    assert out.exit_code == 2 and "NAME=VALUE" in out.output
