"""Orders an executor must not carry out end with a precise state and error code; nothing moves."""

from __future__ import annotations

import asyncio
import sys

import pytest

from agents.drivers.base import WorkloadSpec
from agents.executor_client import ExecutorCallError
from agents.node import Capacity
from tests.integration.migrate_helpers import free_port, migrate, order, served_node, trace_file

PROCESS = WorkloadSpec(
    "p1", "container", "process", memory_bytes=64 << 20,
    params={"command": f"{sys.executable} -m agents.drivers.counter_app --tick 0.2"},
)  # fmt: skip


def test_refusals_name_their_reason(tmp_path):
    trace = trace_file(tmp_path)

    async def scenario() -> dict[str, tuple[str, str, str]]:
        small = Capacity.configure(mem_bytes=16 << 20)
        async with (
            served_node(tmp_path, "na", ["process", "sim"]) as a,
            served_node(tmp_path, "nb", ["sim"]) as b,
            served_node(tmp_path, "nc", ["process"], capacity=small) as c,
        ):
            await a.client.start_workload(PROCESS)
            sim = WorkloadSpec("s1", "vm", "sim", params={"trace": str(trace), "series": "a"})
            await a.client.start_workload(sim)
            cases = {
                "unknown workload": order("nope", a, b),
                "no process driver on the target": order("p1", a, b),
                "target too small": order("p1", a, c),
                "wrong method": order("p1", a, b, method="live"),
                "wrong kind": order("p1", a, b, kind="vm"),
                "past its deadline": order("p1", a, b, deadline_seconds=-1),
                "dry run": order("p1", a, b, dry_run=True),
                "not this node's": order("p1", "nz", b),
                "target unreachable": order(
                    "s1", a, "nb", f"127.0.0.1:{free_port()}", kind="vm", method="simulated", deadline_seconds=3
                ),
            }
            out = {}
            for name, o in cases.items():
                steps = await migrate(a.stub, o)
                assert len(steps) >= 1
                last = steps[-1]
                out[name] = (last.state, last.error.code, last.error.message)
            # Nothing moved, nothing is reserved, and the workloads still run at the source.
            assert sorted((w.spec.workload_id, w.state) for w in await a.client.list_workloads()) == [
                ("p1", "running"), ("s1", "running"),
            ]  # fmt: skip
            assert await b.client.list_workloads() == [] and await c.client.list_workloads() == []
            assert not b.node._reserved and not c.node._reserved
            return out

    got = asyncio.run(scenario())
    assert got["unknown workload"][:2] == ("rejected", "unknown_workload")
    assert "nope" in got["unknown workload"][2]
    assert got["no process driver on the target"][:2] == ("rejected", "target_incompatible")
    assert "driver 'process' is not enabled on node nb" in got["no process driver on the target"][2]
    assert got["target too small"][:2] == ("rejected", "target_capacity")
    assert "memory free" in got["target too small"][2]
    assert got["wrong method"][:2] == ("rejected", "method_mismatch")
    assert got["wrong kind"][:2] == ("rejected", "kind_mismatch")
    assert got["past its deadline"][:2] == ("expired", "deadline_passed")
    assert got["dry run"][:2] == ("rejected", "dry_run")
    assert got["not this node's"][:2] == ("rejected", "wrong_source")
    assert got["target unreachable"][:2] == ("failed", "target_unreachable")


def test_one_move_per_workload_at_a_time(tmp_path):
    trace = trace_file(tmp_path)

    async def scenario() -> None:
        async with served_node(tmp_path, "na", ["sim"]) as a, served_node(tmp_path, "nb", ["sim"]) as b:
            params = {"trace": str(trace), "series": "a", "migration_max_seconds": "2"}
            await a.client.start_workload(WorkloadSpec("s1", "vm", "sim", memory_bytes=8 << 30, params=params))
            first = asyncio.create_task(migrate(a.stub, order("s1", a, b, kind="vm", method="simulated")))
            await asyncio.sleep(0.5)
            second = await migrate(a.stub, order("s1", a, b, kind="vm", method="simulated"))
            assert second[-1].state == "rejected" and second[-1].error.code == "migration_in_progress"
            with pytest.raises(ExecutorCallError) as err:  # nor is it stopped meanwhile
                await a.client.stop_workload("s1")
            assert err.value.code.name == "FAILED_PRECONDITION" and "being migrated" in err.value.details
            assert (await first)[-1].state == "completed"

    asyncio.run(scenario())
