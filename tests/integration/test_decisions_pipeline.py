"""End to end through the real broker: usage in → order and explanation out, bad records → DLQ."""

from __future__ import annotations

import orjson
import pytest

from tests.integration.kafka_io import produce, read_topic, running, settings_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

GiB = 1024**3


def node_usage(node: str, at: float, cpu_ratio: float, workloads: list[str], pool: str = "p1") -> dict:
    return {
        "schema_version": 1, "node_id": node, "sampled_at": at, "interval_seconds": 5.0, "cpu_ratio": cpu_ratio,
        "mem_used_bytes": 4 * GiB, "mem_total_bytes": 32 * GiB, "disk_read_bytes_per_second": 0.0,
        "disk_write_bytes_per_second": 0.0, "net_rx_bytes_per_second": 0.0, "net_tx_bytes_per_second": 0.0,
        "capacity": {"cpu_cores": 8, "mem_bytes": 32 * GiB, "io_bytes_per_second": 1e9},
        "fingerprint": {"arch": "x86_64", "cpu_model": "test", "flags_digest": "0123abcd", "cores": 8,
                        "memory_class": "32Gi", "drivers": {"sim": "1"}, "labels": {}, "pool": pool, "zone": "z1"},
        "workloads": workloads, "executor_endpoint": f"127.0.0.1:5{len(node)}051",
    }  # fmt: skip


def workload_usage(wid: str, node: str, at: float, cores: float, priority: int) -> dict:
    return {
        "schema_version": 1, "workload_id": wid, "node_id": node, "kind": "vm", "driver": "sim", "sampled_at": at,
        "interval_seconds": 5.0, "cpu_cores_used": cores, "cpu_ratio": cores / 8, "mem_used_bytes": 512 * 1024**2,
        "io_bytes_per_second": 0.0, "priority": priority, "started_at": at - 7200,
    }  # fmt: skip


def test_hot_node_gets_an_order_moving_its_lowest_priority_workload(kafka_settings, tmp_path):
    s = kafka_settings
    t0 = 1_800_000_000.0
    records_n, records_w = [], []
    for k in range(12):
        at = t0 + 5 * k
        # hot: 3 workloads using 7.6 of 8 cores; cool: one small workload.
        records_n.append((b"hot", node_usage("hot", at, 0.95, ["w-hi", "w-mid", "w-lo"])))
        records_n.append((b"cool", node_usage("cool", at, 0.10, ["w-c"])))
        for wid, node, cores, prio in (("w-hi", "hot", 3.0, 900), ("w-mid", "hot", 1.6, 500),
                                       ("w-lo", "hot", 3.0, 10), ("w-c", "cool", 0.8, 100)):  # fmt: skip
            records_w.append((wid.encode(), workload_usage(wid, node, at, cores, prio)))
    env = settings_env(s, PLBA_DECISION_INTERVAL_SECONDS="10", PLBA_WORKER_DISPATCH="false")
    with running(["worker"], env, tmp_path / "worker.log") as worker:
        produce(s, "policies", [])
        produce(s, "workload_usage", records_w)
        # A bad record between valid ones: it must land in the DLQ and not stop the rest.
        produce(s, "node_usage", [(b"junk", b'{"schema_version": 1, "node_id": 5}')], raw=True)
        produce(s, "node_usage", records_n)
        orders = read_topic(s, "orders", until=lambda r: len(r) >= 1, timeout=90, alive=worker)
        explanations = read_topic(s, "explanations", until=lambda r: len(r) >= 1, timeout=30, alive=worker)
        dlq = read_topic(s, "dlq", until=lambda r: len(r) >= 1, timeout=30, alive=worker)
    log = (tmp_path / "worker.log").read_text()
    assert orders, f"no order; worker log:\n{log[-3000:]}"
    first = orders[0]
    assert first["source_node"] == "hot" and first["target_node"] == "cool"
    assert first["workload_id"] == "w-lo", "the lowest-priority workload that resolves the overload moves"
    assert first["reason"]["code"] in ("predicted_overload", "current_overload")
    assert any(e["node_id"] == "hot" for e in explanations)
    assert dlq and dlq[0]["error_code"] == "schema_violation"
    assert any(v["path"] == "$.node_id" for v in dlq[0]["violations"])


def test_maintenance_announced_as_a_third_party_cloudevent_evacuates_the_node(kafka_settings, tmp_path):
    s = kafka_settings
    t0 = 1_800_000_000.0
    headers = [
        ("ce_specversion", b"1.0"), ("ce_id", b"chg-4711"), ("ce_source", b"/ci/maintenance-calendar"),
        ("ce_type", b"io.plba.event.maintenance"), ("content-type", b"application/json"),
    ]  # fmt: skip
    data = orjson.dumps({"starts_at": t0 + 600, "ends_at": t0 + 3600, "scope": {"nodes": ["a"]},
                         "event_id": "chg-4711", "reason": "kernel upgrade"})  # fmt: skip
    env = settings_env(s, PLBA_DECISION_INTERVAL_SECONDS="10", PLBA_WORKER_DISPATCH="false")
    with running(["worker"], env, tmp_path / "worker.log") as worker:
        produce(s, "events", [(b"chg-4711", data)], raw=True, headers=headers)
        records_w, records_n = [], []
        for k in range(8):
            at = t0 + 5 * k
            records_w.append((b"w-a", workload_usage("w-a", "a", at, 1.0, 10)))
            records_n.append((b"a", node_usage("a", at, 0.2, ["w-a"])))
            records_n.append((b"b", node_usage("b", at, 0.1, [])))
        produce(s, "workload_usage", records_w)
        produce(s, "node_usage", records_n)
        orders = read_topic(s, "orders", until=lambda r: len(r) >= 1, timeout=90, alive=worker)
    log = (tmp_path / "worker.log").read_text()
    assert orders, f"no evacuation order; worker log:\n{log[-3000:]}"
    assert (orders[0]["workload_id"], orders[0]["source_node"], orders[0]["target_node"]) == ("w-a", "a", "b")
    assert orders[0]["reason"]["code"] == "maintenance_evacuation"
