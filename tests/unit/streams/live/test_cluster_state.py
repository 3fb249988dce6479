"""The live cluster state folds contract records into the policy's view; the stage decides."""

from __future__ import annotations

import pytest

from streams.decisions.config import PolicyConfig
from streams.live.cluster_state import LiveClusterState
from streams.live.decision_stage import DecisionStage

GiB = 1024**3
T0 = 1_800_000_000.0


def node(node_id: str, at: float, cpu_ratio: float, workloads: list[str], pool: str = "p1", drivers=None) -> dict:
    return {
        "schema_version": 1, "node_id": node_id, "sampled_at": at, "interval_seconds": 5.0, "cpu_ratio": cpu_ratio,
        "mem_used_bytes": 4 * GiB, "mem_total_bytes": 32 * GiB, "disk_read_bytes_per_second": 1.0,
        "disk_write_bytes_per_second": 2.0, "net_rx_bytes_per_second": 3.0, "net_tx_bytes_per_second": 4.0,
        "capacity": {"cpu_cores": 8, "mem_bytes": 32 * GiB, "io_bytes_per_second": 1e9},
        "fingerprint": {"arch": "x86_64", "cpu_model": "m", "flags_digest": "0123abcd", "cores": 8,
                        "memory_class": "32Gi", "drivers": drivers or {"sim": "1"}, "labels": {}, "pool": pool},
        "workloads": workloads, "executor_endpoint": f"127.0.0.1:{50000 + len(node_id)}",
    }  # fmt: skip


def wl(wid: str, node_id: str, at: float, cores: float, priority: int | None = 50, app: str = "") -> dict:
    rec = {
        "schema_version": 1, "workload_id": wid, "node_id": node_id, "kind": "vm", "driver": "sim",
        "sampled_at": at, "interval_seconds": 5.0, "cpu_cores_used": cores, "cpu_ratio": cores / 8,
        "mem_used_bytes": GiB, "io_bytes_per_second": 10.0, "started_at": at - 3600,
    }  # fmt: skip
    if priority is not None:
        rec["priority"] = priority
    if app:
        rec["app"] = app
    return rec


def test_node_usage_becomes_a_node_with_absolute_usage():
    st = LiveClusterState(horizons_seconds=(60.0, 120.0))
    st.on_node_usage(node("n1", T0, 0.5, []))
    view = st.view()
    assert view.nodes["n1"].capacity == {"cpu": 8.0, "memory": float(32 * GiB), "io": 1e9}
    assert view.node_usage[("n1", "cpu")] == pytest.approx(4.0)
    assert view.node_usage[("n1", "io")] == pytest.approx(10.0)
    assert view.nodes["n1"].driver == "sim"
    assert st.endpoint("n1") == "127.0.0.1:50002"


def test_real_runtime_wins_over_sim_for_the_migration_method():
    st = LiveClusterState(horizons_seconds=(60.0,))
    st.on_node_usage(node("n1", T0, 0.5, [], drivers={"sim": "1", "qemu": "8.2"}))
    assert st.view().nodes["n1"].driver == "qemu"
    assert st.view().nodes["n1"].kinds >= {"vm"}


def test_policies_override_reported_priority_with_precedence_and_tombstones():
    st = LiveClusterState(horizons_seconds=(60.0,))
    st.on_node_usage(node("n1", T0, 0.5, ["w1"]))
    st.on_workload_usage(wl("w1", "n1", T0, 1.0, priority=70, app="shop"))
    assert st.view().workloads["w1"].priority == 70
    st.on_policy("app:shop", {"subject_kind": "app", "subject": "shop", "priority": 5, "tier": "gold"})
    st.on_policy("workload:w1", {"subject_kind": "workload", "subject": "w1", "priority": 900})
    w = st.view().workloads["w1"]
    assert (w.priority, w.sla_tier) == (900, "gold")
    st.on_policy("workload:w1", None)
    # The priority the workload was started with is workload-specific: it ranks above the app's.
    assert st.view().workloads["w1"].priority == 70


def test_quiet_nodes_and_workloads_leave_the_view():
    st = LiveClusterState(horizons_seconds=(60.0,))
    st.on_node_usage(node("old", T0, 0.5, []))
    st.on_node_usage(node("new", T0 + 600, 0.5, []))
    assert set(st.view().nodes) == {"new"}


def test_completed_migration_moves_the_workload_and_closes_the_order():
    st = LiveClusterState(horizons_seconds=(60.0,))
    st.on_node_usage(node("a", T0, 0.5, ["w"]))
    st.on_node_usage(node("b", T0, 0.1, []))
    st.on_workload_usage(wl("w", "a", T0, 1.0))
    order = {"order_id": "o1", "workload_id": "w", "source_node": "a", "target_node": "b",
             "issued_at": T0, "deadline_at": T0 + 60, "dry_run": False}  # fmt: skip
    st.on_order(order)
    assert "w" in st.view().in_flight
    step = {"order_id": "o1", "workload_id": "w", "source_node": "a", "target_node": "b", "at": T0 + 5}
    st.on_migration({**step, "state": "transferring"})
    assert "w" in st.view().in_flight
    st.on_migration({**step, "state": "completed"})
    view = st.view()
    assert "w" not in view.in_flight and view.workloads["w"].node_id == "b"
    st.on_order(order)  # a redelivered order of a finished migration does not reopen it
    assert "w" not in st.view().in_flight


def forecast(subject: str, kind: str, at: float, cores: float) -> dict:
    return {
        "subject": subject, "subject_kind": kind, "node_id": subject, "resource": "cpu", "unit": "absolute",
        "issued_at": at, "horizons_seconds": [60.0, 120.0], "mean": [cores, cores], "upper": [cores, cores],
        "reliable": True,
    }  # fmt: skip


def test_a_node_forecast_gives_way_to_its_workloads_sum_until_a_move_has_settled():
    # The node's forecaster learned from w1 + w2 (6 cores); w2 moved off at T0 + 10.
    st = LiveClusterState(horizons_seconds=(60.0, 120.0))
    st.on_node_usage(node("a", T0, 0.75, ["w1", "w2"]))
    st.on_node_usage(node("b", T0, 0.1, []))
    st.on_workload_usage(wl("w1", "a", T0, 2.0))
    st.on_workload_usage(wl("w2", "a", T0, 4.0))
    st.on_forecast(forecast("a", "node", T0, 6.0))
    st.on_forecast(forecast("w1", "workload", T0, 2.0))
    st.on_forecast(forecast("w2", "workload", T0, 4.0))
    assert st.view().node_moments("a", "cpu")[0] == [6.0, 6.0]  # no move yet: the node's own forecast
    st.on_migration({"order_id": "o1", "workload_id": "w2", "source_node": "a", "target_node": "b",
                     "at": T0 + 10, "state": "completed"})  # fmt: skip
    st.on_forecast(forecast("a", "node", T0 + 20, 6.0))  # still remembers w2
    view = st.view()
    assert view.node_moments("a", "cpu")[0] == [2.0, 2.0]  # what a hosts now
    assert view.node_moments("b", "cpu")[0] == [4.0, 4.0]
    st.on_forecast(forecast("a", "node", T0 + 10 + 120, 2.5))  # the longest horizon has passed
    assert st.view().node_moments("a", "cpu")[0] == [2.5, 2.5]


def test_stage_waits_for_complete_view_then_decides_once_per_interval():
    st = LiveClusterState(horizons_seconds=(60.0, 120.0))
    stage = DecisionStage(st, PolicyConfig(decision_interval_seconds=10.0, persistence=1), "reactive")
    for k in range(4):
        at = T0 + 5 * k
        st.on_node_usage(node("hot", at, 0.95, ["w-big", "w-lo"]))
        st.on_node_usage(node("cool", at, 0.1, []))
        if k == 0:
            assert stage.run_due() == [], "w-big and w-lo have not reported: no decision on a partial view"
        st.on_workload_usage(wl("w-big", "hot", at, 5.6, priority=900))
        st.on_workload_usage(wl("w-lo", "hot", at, 2.0, priority=1))
    outs = stage.run_due()
    assert len(outs) == 1 and outs[0].pool == "p1"
    assert [o["workload_id"] for o in outs[0].orders] == ["w-lo"]
    assert outs[0].orders[0]["target_node"] == "cool"
    assert stage.run_due() == [], "same event time: not due again"


def test_unknown_policy_name_is_refused():
    with pytest.raises(ValueError, match="unknown policy 'magic'"):
        DecisionStage(LiveClusterState(horizons_seconds=(1.0,)), PolicyConfig(), "magic")


def test_decision_records_pass_their_contracts():
    from schemas.codec import codec

    st = LiveClusterState(horizons_seconds=(60.0, 120.0))
    stage = DecisionStage(st, PolicyConfig(decision_interval_seconds=10.0, persistence=1), "reactive")
    for k in range(4):
        at = T0 + 5 * k
        st.on_node_usage(node("hot", at, 0.95, ["w-big", "w-lo"]))
        st.on_node_usage(node("cool", at, 0.1, []))
        st.on_workload_usage(wl("w-big", "hot", at, 5.6, priority=900))
        st.on_workload_usage(wl("w-lo", "hot", at, 2.0, priority=1))
    (out,) = stage.run_due()
    assert out.orders and out.explanations
    for order in out.orders:
        codec("order").validate(order)
        assert order["policy"] == "reactive" and order["mem_bytes"] == GiB
    for expl in out.explanations:
        codec("explanation").validate(expl)
    acted = [e for e in out.explanations if e["decision"] == "acted"]
    assert acted and acted[0]["order_ids"] == [out.orders[0]["order_id"]]


def test_recommend_mode_scores_its_recommendations_against_what_happened():
    st = LiveClusterState(horizons_seconds=(60.0, 120.0))
    stage = DecisionStage(st, PolicyConfig(mode="recommend", decision_interval_seconds=5.0, persistence=1), "reactive")
    assert stage.shadow is not None
    for k in range(8):
        at = T0 + 5 * k
        st.on_node_usage(node("hot", at, 0.95, ["w-big", "w-lo"]))
        st.on_node_usage(node("cool", at, 0.1, []))
        st.on_workload_usage(wl("w-big", "hot", at, 5.6, priority=900))
        st.on_workload_usage(wl("w-lo", "hot", at, 2.0, priority=1))
        for out in stage.run_due():
            assert all(o["dry_run"] for o in out.orders)
    score = stage.shadow_score()
    assert score is not None and score.true_positives >= 1 and score.precision == 1.0


def test_enforce_mode_keeps_no_shadow_score():
    stage = DecisionStage(LiveClusterState(horizons_seconds=(1.0,)), PolicyConfig(), "predictive")
    assert stage.shadow_score() is None
