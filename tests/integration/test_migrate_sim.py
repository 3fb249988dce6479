"""Simulated workloads move between two real executors: modelled duration, the trace goes on."""

from __future__ import annotations

import asyncio

import pytest

from agents.drivers.base import WorkloadSpec
from schemas.migration_model import MigrationModel
from tests.integration.migrate_helpers import migrate, order, trace_file, two_nodes


def test_a_sim_workload_moves_and_its_trace_continues(tmp_path):
    trace = trace_file(tmp_path)

    async def scenario() -> None:
        async with two_nodes(tmp_path, ["sim"]) as (a, b):
            params = {"trace": str(trace), "series": "a", "step_seconds": "10", "speed": "100",
                      "migration_max_seconds": "1"}  # fmt: skip
            spec = WorkloadSpec("s1", "vm", "sim", memory_bytes=2 << 30, cpu_cores=2.0, params=params)
            await a.client.start_workload(spec)
            source_model = a.node.driver("sim").model("s1")  # type: ignore[attr-defined]
            steps = await migrate(a.stub, order("s1", a, b, kind="vm", method="simulated"))
            states = [s.state for s in steps]
            assert states[:3] == ["accepted", "preparing", "transferring"] and states[-2:] == ["switching", "completed"]
            done = steps[-1]
            # The shared model's figures for 2 GiB, compressed 100x (and capped at 1 s wall time).
            estimate = MigrationModel().estimate("simulated", 2 << 30)
            scale = min(1 / 100, 1.0 / estimate.duration_seconds)
            assert done.transferred_bytes == int(estimate.transferred_bytes) >= 2 << 30
            assert done.downtime_seconds == pytest.approx(estimate.downtime_seconds * scale)
            assert done.total_seconds >= estimate.duration_seconds * scale
            assert done.driver == "sim" and done.method == "simulated"
            assert [w.spec.workload_id for w in await a.client.list_workloads()] == []
            (moved,) = await b.client.list_workloads()
            assert moved.spec.workload_id == "s1" and moved.state == "running"
            target_model = b.node.driver("sim").model("s1")  # type: ignore[attr-defined]
            # Same anchor and offset: the usage at any instant is what the source would have shown.
            for t in (1000.0, 1234.5, 99999.0):
                assert target_model.cpu_cores_used(t) == pytest.approx(source_model.cpu_cores_used(t))
            assert target_model.anchor_at == source_model.anchor_at

    asyncio.run(scenario())
