"""kill -9 of the source or the target executor at every phase: after a restart exactly one instance runs.

Two real `plba node` processes on loopback move a stateful process workload; the real dispatcher
(``streams.dispatcher.Dispatcher``, without Kafka) drives the order and re-attaches to the source
when it comes back. The crash is the executor's test hook (``PLBA_FAULT_CRASH_AT=ROLE:PHASE``),
an ``os._exit(137)`` at the hardest moment of each phase (see agents/migration/faults.py). The
crashed node is started again (same port, same state directory); then the outcome is published
(completed or rolled_back), exactly one counter process runs, and its count went on.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
import uuid
from typing import Any

import grpc
import pytest

from agents.drivers.base import WorkloadSpec
from agents.executor_client import ExecutorClient
from plba.faults.executor import CRASH_CASES
from plba.faults.nodes import kill_leftovers, workload_processes
from schemas import executor_pb2 as pb
from streams.dispatcher import Dispatcher
from tests.integration.migrate_helpers import NodeProcess, until

# (role, phase) -> the outcome the protocol must reach
CASES = CRASH_CASES


def counter_spec() -> WorkloadSpec:
    command = f"{sys.executable} -m agents.drivers.counter_app --tick 0.05 --state-bytes 2097152"
    return WorkloadSpec("p1", "container", "process", memory_bytes=64 << 20, params={"command": command})


def order_record(source: NodeProcess, target: NodeProcess) -> dict[str, Any]:
    now = time.time()
    return {
        "schema_version": 1, "order_id": f"o-{uuid.uuid4().hex[:10]}", "workload_id": "p1", "kind": "container",
        "source_node": source.node_id, "target_node": target.node_id, "method": "snapshot",
        "reason": {"code": "predicted_overload", "message": "test"}, "issued_at": now, "deadline_at": now + 90.0,
        "dry_run": False, "mode": "enforce", "pool": "p",
    }  # fmt: skip


def http_state(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{endpoint}/state", timeout=30) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


async def terminal_phase(node: NodeProcess, order_id: str) -> str | None:
    """The node's journal phase for the order (None: it never heard of it)."""
    async with ExecutorClient(node.endpoint, timeout_seconds=10) as client:
        try:
            reply = await client.stub.MigrationStatus(pb.MigrationStatusRequest(order_id=order_id), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return str(reply.phase)


@pytest.mark.parametrize(("role", "phase"), list(CASES), ids=[f"{r}-{p}" for r, p in CASES])
def test_crash_at_each_phase_converges_to_one_instance(tmp_path, role, phase):
    expected = CASES[(role, phase)]
    crash = {"PLBA_FAULT_CRASH_AT": f"{role}:{phase}"}
    source = NodeProcess("na", tmp_path / "state", "process", env=crash if role == "source" else None)
    target = NodeProcess("nb", tmp_path / "state", "process", env=crash if role == "target" else None)
    victim = source if role == "source" else target

    async def scenario() -> None:
        source.start()
        target.start()
        await asyncio.gather(source.ready(), target.ready())
        async with ExecutorClient(source.endpoint, timeout_seconds=60) as client:
            info = await client.start_workload(counter_spec())
        before = await asyncio.to_thread(http_state, info.endpoint)
        endpoints = {"na": source.endpoint, "nb": target.endpoint}
        dispatcher = Dispatcher(endpoints.get, retry_backoff_seconds=0.2)
        order = order_record(source, target)
        records: list[dict[str, Any]] = []

        async def dispatch() -> None:
            async for kind, rec in dispatcher.execute(order):
                if kind == "migrations":
                    records.append(rec)

        task = asyncio.create_task(dispatch())
        try:
            assert await victim.exited() == 137, victim.log()[-2000:]
            victim.env.pop("PLBA_FAULT_CRASH_AT")
            victim.start()
            await victim.ready()
            await asyncio.wait_for(task, 90)
        finally:
            task.cancel()
            await dispatcher.close()
        final = records[-1]
        assert final["state"] == expected, (records, source.log()[-3000:], target.log()[-3000:])
        assert final["state"] in ("completed", "rolled_back")
        if expected == "rolled_back":
            assert final["error"]["code"], final

        # Both journals converge: the source's is terminal, the target's committed or aborted.
        async def journals_settled() -> bool:
            src = await terminal_phase(source, order["order_id"])
            dst = await terminal_phase(target, order["order_id"])
            want = "committed" if expected == "completed" else "aborted"
            return src == expected and dst in (want, None if expected == "rolled_back" else want)

        await until(journals_settled, "both journals reach the outcome", timeout=30, interval=0.2)
        # Exactly one instance, on the node the outcome names, and the state went on.
        await until(lambda: len(workload_processes(tmp_path)) == 1, "exactly one counter process", timeout=20)
        holder, other = (target, source) if expected == "completed" else (source, target)
        async with ExecutorClient(holder.endpoint) as h, ExecutorClient(other.endpoint) as o:
            (running,) = await h.list_workloads()
            assert (running.spec.workload_id, running.state) == ("p1", "running")
            assert await o.list_workloads() == []
        after = await asyncio.to_thread(http_state, running.endpoint)
        assert after["count"] >= before["count"]
        assert after["ballast_sha256"] == before["ballast_sha256"]
        (alive,) = workload_processes(tmp_path)
        assert alive.pid == running.pid

    try:
        asyncio.run(scenario())
    finally:
        source.stop()
        target.stop()
        kill_leftovers(tmp_path)


def test_a_node_refuses_a_malformed_crash_hook(tmp_path):
    node = NodeProcess("nx", tmp_path / "state", "process", env={"PLBA_FAULT_CRASH_AT": "source:teleport"})

    async def scenario() -> None:
        node.start()
        code = await node.exited(60)
        assert code != 0 and "crash point 'source:teleport'" in node.log()

    try:
        asyncio.run(scenario())
    finally:
        node.stop()
