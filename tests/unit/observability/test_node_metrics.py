"""The node process's metric catalog."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from agents.drivers.base import AlreadyExists
from agents.metrics import NodeMetrics


def _v(reg: CollectorRegistry, name: str, **labels: str) -> float:
    v = reg.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_names_and_no_ids():
    reg = CollectorRegistry()
    NodeMetrics(reg, process_metrics=False)
    assert all(f.name.startswith("plba_") for f in reg.collect())
    labels = {k for f in reg.collect() for s in f.samples for k in s.labels}
    assert not labels & {"node", "node_id", "workload", "workload_id"}


def test_driver_operation_outcomes():
    reg = CollectorRegistry()
    m = NodeMetrics(reg, drivers=("sim",), process_metrics=False)
    with m.driver_operation("sim", "start"):
        pass
    with pytest.raises(AlreadyExists), m.driver_operation("sim", "start"):
        raise AlreadyExists("w1 is already running")
    with pytest.raises(ZeroDivisionError), m.driver_operation("sim", "stop"):
        _ = 1 / 0

    async def cancelled() -> None:
        with m.driver_operation("sim", "migrate_out"):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    ops = "plba_driver_operations_total"
    assert _v(reg, ops, driver="sim", operation="start", outcome="ok") == 1
    assert _v(reg, ops, driver="sim", operation="start", outcome="already_exists") == 1
    assert _v(reg, ops, driver="sim", operation="stop", outcome="internal") == 1
    assert _v(reg, ops, driver="sim", operation="migrate_out", outcome="cancelled") == 1
    assert _v(reg, "plba_driver_operation_duration_seconds_count", driver="sim", operation="start") == 2


def test_producer_agent_and_migration_helpers():
    reg = CollectorRegistry()
    m = NodeMetrics(reg, drivers=("qemu", "sim"), process_metrics=False)
    m.samples_taken.labels("workload").inc(10)
    m.record_skipped("overrun")
    m.record_dropped("buffer_full", 5)
    for i in range(3):
        m.record_delivery_failure(retriable=i > 0)
    m.set_hosted({"qemu": 1, "sim": 4})
    m.record_phase("qemu", "transfer", "ok")
    m.record_phase("qemu", "switch", "timeout")
    m.record_migration("qemu", "source", duration_seconds=2.5, downtime_seconds=0.002)
    m.record_migration("qemu", "target", duration_seconds=2.4, downtime_seconds=0.002)
    assert _v(reg, "plba_agent_samples_taken_total", scope="workload") == 10
    assert _v(reg, "plba_agent_samples_skipped_total", reason="overrun") == 1
    assert _v(reg, "plba_producer_dropped_records_total", reason="buffer_full") == 5
    assert _v(reg, "plba_producer_delivery_failures_total", retriable="true") == 2
    assert _v(reg, "plba_producer_delivery_failures_total", retriable="false") == 1
    assert _v(reg, "plba_workloads_hosted", driver="sim") == 4
    assert _v(reg, "plba_executor_migration_phases_total", driver="qemu", phase="switch", outcome="failed") == 1
    assert _v(reg, "plba_executor_migration_duration_seconds_count", driver="qemu", role="target") == 1
    assert _v(reg, "plba_executor_migration_downtime_seconds_count", driver="qemu") == 1  # source only
    # Pre-initialised only for the node's own drivers.
    assert reg.get_sample_value("plba_workloads_hosted", {"driver": "function"}) is None
