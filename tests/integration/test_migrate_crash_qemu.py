"""kill -9 of a node during a live migration: QEMU goes on migrating without it, recovery copes.

The source executor dies mid pre-copy (``source:transfer``): the two QEMUs keep migrating on
their own and may even finish. The restarted source rolls back — cancelling a migration still
under way, or, if QEMU completed it, aborting the target's VM (acknowledged) before resuming its
own — so exactly one VM runs. The target dying after the switch (``target:switch``) finishes
forwards: the restarted target keeps the VM it verified running.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agents.drivers.base import WorkloadSpec
from agents.executor_client import ExecutorClient
from plba.faults.nodes import kill_leftovers, workload_processes
from streams.dispatcher import Dispatcher
from tests.integration.migrate_helpers import NodeProcess, until

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 is not installed"),
]


@pytest.mark.parametrize(("role", "phase", "expected"), [("source", "transfer", "rolled_back"),
                                                          ("target", "switch", "completed")])  # fmt: skip
def test_a_node_crash_during_a_live_migration_leaves_one_vm(tmp_path, role, phase, expected):
    root = Path(f"/tmp/plba-cq-{uuid.uuid4().hex[:8]}")  # short: QMP sockets live inside
    crash = {"PLBA_FAULT_CRASH_AT": f"{role}:{phase}"}
    source = NodeProcess("na", root, "qemu", env=crash if role == "source" else None)
    target = NodeProcess("nb", root, "qemu", env=crash if role == "target" else None)
    victim = source if role == "source" else target

    async def scenario() -> None:
        source.start()
        target.start()
        await asyncio.gather(source.ready(), target.ready())
        spec = WorkloadSpec("vm1", "vm", "qemu", memory_bytes=128 << 20, params={"ram_fill": "random"})
        async with ExecutorClient(source.endpoint, timeout_seconds=60) as client:
            await client.start_workload(spec)
        dispatcher = Dispatcher({"na": source.endpoint, "nb": target.endpoint}.get, retry_backoff_seconds=0.2)
        now = time.time()
        order = {
            "order_id": f"o-{uuid.uuid4().hex[:10]}", "workload_id": "vm1", "kind": "vm", "source_node": "na",
            "target_node": "nb", "method": "live", "reason": {"code": "predicted_overload"}, "issued_at": now,
            "deadline_at": now + 120, "dry_run": False,
        }  # fmt: skip
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
            await asyncio.wait_for(task, 120)
        finally:
            task.cancel()
            await dispatcher.close()
        assert records[-1]["state"] == expected, (records[-3:], source.log()[-3000:], target.log()[-3000:])
        holder, other = (target, source) if expected == "completed" else (source, target)
        await until(lambda: len(workload_processes(root)) == 1, "exactly one QEMU", timeout=30)
        async with ExecutorClient(holder.endpoint) as h, ExecutorClient(other.endpoint) as o:
            (vm,) = await h.list_workloads()
            assert (vm.spec.workload_id, vm.state) == ("vm1", "running")
            assert await o.list_workloads() == []
        (alive,) = workload_processes(root)
        assert alive.pid == vm.pid

    try:
        asyncio.run(scenario())
    finally:
        source.stop()
        target.stop()
        kill_leftovers(root)
        shutil.rmtree(root, ignore_errors=True)
