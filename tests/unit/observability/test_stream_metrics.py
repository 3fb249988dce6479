"""The worker's metric catalog: names, bounded labels, helpers, serving."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from schemas.errors import ERROR_CODES
from streams.metrics import FleetMetrics, LabelCap, StreamMetrics, horizon_bucket, serve_metrics


def _v(reg: CollectorRegistry, name: str, **labels: str) -> float:
    v = reg.get_sample_value(name, labels)
    return 0.0 if v is None else v


def _label_names(reg: CollectorRegistry) -> set[str]:
    return {k for fam in reg.collect() for s in fam.samples for k in s.labels}


@pytest.fixture
def reg() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def m(reg: CollectorRegistry) -> StreamMetrics:
    return StreamMetrics(reg, process_metrics=False)


def test_every_family_is_plba_prefixed_and_carries_no_ids(reg, m):
    names = {fam.name for fam in reg.collect()}
    assert names and all(n.startswith("plba_") for n in names)
    assert not _label_names(reg) & {"node", "node_id", "workload", "workload_id", "order_id", "pool"}


def test_closed_label_sets_start_at_zero(reg, m):
    assert reg.get_sample_value("plba_migrations_total", {"driver": "qemu", "outcome": "failed"}) == 0
    assert reg.get_sample_value("plba_dlq_writes_total", {"source": "workload_usage", "code": "invalid_json"}) == 0
    assert reg.get_sample_value("plba_hot_nodes", {"resource": "io"}) == 0
    # Histograms start at zero as well: rate() only sees a first observation as a rise from 0.
    assert reg.get_sample_value("plba_migration_duration_seconds_count", {"driver": "qemu"}) == 0


def test_rejections_and_dlq_keep_labels_bounded(reg, m):
    m.record_rejected("workload_usage", "schema_violation")
    for i in range(200):
        m.record_rejected("workload_usage", f"weird_{i}")
        m.record_dlq(f"someone.elses.topic.{i}", "schema_violation")
    assert _v(reg, "plba_records_rejected_total", topic="workload_usage", reason="schema_violation") == 1
    reasons = {s.labels["reason"] for f in reg.collect() if f.name == "plba_records_rejected" for s in f.samples}
    assert len(reasons) <= len(ERROR_CODES) + 1 + 16  # the contract's codes + other + the cap
    assert _v(reg, "plba_records_rejected_total", topic="workload_usage", reason="other") == 200 - 16
    assert _v(reg, "plba_dlq_writes_total", source="other", code="schema_violation") == 200


def test_forecast_scoring(reg, m):
    m.observe_forecast("node", "cpu", 300, actual=0.9, lower=0.5, upper=0.8, mean=0.6)
    m.observe_forecast("node", "cpu", 240, actual=0.7, lower=0.5, upper=0.8, mean=0.6)
    m.observe_forecast("workload", "memory", 30, actual=10.0, lower=20.0, upper=30.0, mean=25.0, scale=100.0)
    m.observe_forecast("workload", "cpu", 7200, actual=1.0, lower=0.0, upper=2.0)  # coverage only
    checks = "plba_forecast_interval_checks_total"
    assert _v(reg, checks, subject_kind="node", resource="cpu", horizon="5m", outcome="above") == 1
    assert _v(reg, checks, subject_kind="node", resource="cpu", horizon="5m", outcome="inside") == 1
    assert _v(reg, checks, subject_kind="workload", resource="memory", horizon="1m", outcome="below") == 1
    assert _v(reg, checks, subject_kind="workload", resource="cpu", horizon="long", outcome="inside") == 1
    err = "plba_forecast_abs_error_ratio"
    assert _v(reg, f"{err}_sum", subject_kind="node", resource="cpu", horizon="5m") == pytest.approx(0.4)
    assert _v(reg, f"{err}_count", subject_kind="node", resource="cpu", horizon="5m") == 2
    assert _v(reg, f"{err}_sum", subject_kind="workload", resource="memory", horizon="1m") == pytest.approx(0.15)
    assert _v(reg, f"{err}_count", subject_kind="workload", resource="cpu", horizon="long") == 0


@pytest.mark.parametrize(
    ("seconds", "label"), [(1, "1m"), (60, "1m"), (61, "5m"), (300, "5m"), (900, "15m"), (3600, "1h"), (3601, "long")]
)
def test_horizon_buckets(seconds, label):
    assert horizon_bucket(seconds) == label


def test_models_in_use_drop_to_zero(reg, m):
    m.set_models_in_use({"snarimax": 3, "ewma": 2})
    m.set_models_in_use({"ewma": 4})
    assert _v(reg, "plba_forecast_model_in_use", model="snarimax") == 0
    assert _v(reg, "plba_forecast_model_in_use", model="ewma") == 4


def test_record_decision_counts_orders_decisions_and_exclusions(reg, m):
    order = {"mode": "enforce", "method": "live", "reason": {"code": "predicted_overload", "message": ""}}
    acted = {"decision": "acted", "reason": "predicted_overload", "mode": "enforce", "candidates": [], "targets": []}
    idle = {
        "decision": "no_action",
        "reason": "no_target",
        "candidates": [{"workload_id": "w1", "excluded_by": "cooldown"}, {"workload_id": "w2", "excluded_by": None}],
        "targets": [{"node_id": "n2", "excluded_by": "would_overload"}],
    }
    m.record_decision(SimpleNamespace(orders=[order], explanations=[acted, idle]), mode="recommend")
    assert _v(reg, "plba_orders_issued_total", mode="enforce", method="live", reason="predicted_overload") == 1
    assert _v(reg, "plba_decisions_total", mode="enforce", decision="acted", reason="predicted_overload") == 1
    assert _v(reg, "plba_decisions_total", mode="recommend", decision="no_action", reason="no_target") == 1
    assert _v(reg, "plba_explanations_total", decision="no_action") == 1
    assert _v(reg, "plba_explanation_exclusions_total", subject="candidate", excluded_by="cooldown") == 1
    assert _v(reg, "plba_explanation_exclusions_total", subject="target", excluded_by="would_overload") == 1
    assert _v(reg, "plba_explanation_exclusions_total", subject="candidate", excluded_by="none") == 0


def test_record_migration(reg, m):
    m.record_migration("qemu", "completed", duration_seconds=3.0, downtime_seconds=0.002, transferred_bytes=1 << 20)
    m.record_migration("qemu", "failed", duration_seconds=50.0)
    m.record_migration("sim", "exploded")
    assert _v(reg, "plba_migrations_total", driver="qemu", outcome="completed") == 1
    assert _v(reg, "plba_migrations_total", driver="qemu", outcome="failed") == 1
    assert _v(reg, "plba_migrations_total", driver="sim", outcome="other") == 1
    assert _v(reg, "plba_migration_duration_seconds_count", driver="qemu") == 1  # failures not timed
    assert _v(reg, "plba_migration_downtime_seconds_bucket", driver="qemu", le="0.0025") == 1
    assert _v(reg, "plba_migration_downtime_seconds_bucket", driver="qemu", le="0.001") == 0
    assert _v(reg, "plba_migration_transferred_bytes_total", driver="qemu") == 1 << 20


def test_fleet_family_and_its_bounds():
    reg = CollectorRegistry()
    fleet = FleetMetrics(reg, window_seconds=100)
    fleet.set_node("n1", "cpu", actual=0.5, forecast=0.6, upper=0.7, lower=0.4)
    fleet.set_node("n2", "memory", actual=0.2)
    assert _v(reg, "plba_node_utilization_ratio", node="n1", resource="cpu", kind="upper") == 0.7
    assert fleet.nodes == 2
    fleet.forget_node("n1")
    assert (
        reg.get_sample_value("plba_node_utilization_ratio", {"node": "n1", "resource": "cpu", "kind": "upper"}) is None
    )
    assert fleet.nodes == 1

    fleet.record_migration("w1", at=1000.0)
    fleet.record_migration("w1", at=1050.0)
    fleet.record_migration("w2", at=1060.0)
    assert _v(reg, "plba_workload_recent_migrations", workload="w1") == 2
    fleet.expire(1120.0)  # w1's first migration leaves the window
    assert _v(reg, "plba_workload_recent_migrations", workload="w1") == 1
    fleet.expire(1200.0)
    assert reg.get_sample_value("plba_workload_recent_migrations", {"workload": "w1"}) is None
    assert reg.get_sample_value("plba_workload_recent_migrations", {"workload": "w2"}) is None
    with pytest.raises(ValueError):
        FleetMetrics(CollectorRegistry(), window_seconds=0)


def test_label_cap():
    cap = LabelCap(("a",), extra=2)
    assert [cap(v) for v in ("a", "b", "c", "d", "b", None, "")] == ["a", "b", "c", "other", "b", "other", "other"]


def test_serve_several_registries_on_an_ephemeral_port(reg, m):
    fleet_reg = CollectorRegistry()
    FleetMetrics(fleet_reg).set_node("n1", "cpu", actual=0.25)
    m.record_consumed("node_usage", 3)
    with serve_metrics([reg, fleet_reg], port=0) as server:
        assert server.port > 0
        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
    assert 'plba_records_consumed_total{topic="node_usage"} 3.0' in body
    assert 'plba_node_utilization_ratio{kind="actual",node="n1",resource="cpu"} 0.25' in body
    assert 'plba_build_info{component="worker"' in body


def test_exclusion_codes_match_the_policy():
    explain = pytest.importorskip("streams.decisions.explain")
    from streams import metrics

    assert metrics.CANDIDATE_EXCLUSIONS == explain.CANDIDATE_EXCLUSIONS
    assert metrics.TARGET_EXCLUSIONS == explain.TARGET_EXCLUSIONS
