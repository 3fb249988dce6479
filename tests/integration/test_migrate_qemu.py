"""A running VM live-migrates between two nodes on loopback and answers QMP on the target only."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import psutil
import pytest
from qemu.qmp import QMPClient
from qemu.qmp.protocol import ConnectError

from agents.drivers.base import WorkloadSpec
from tests.integration.migrate_helpers import migrate, order, two_nodes

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 is not installed"),
]


async def qmp_status(socket_path: str) -> str:
    """A QMP session of our own (QEMU serves one client: call it where the driver holds none)."""
    client = QMPClient("test")
    await asyncio.wait_for(client.connect(socket_path), 10)
    try:
        return str((await client.execute("query-status"))["status"])
    finally:
        await client.disconnect()


def test_a_running_vm_moves_and_answers_qmp_on_the_target_only(tmp_path):
    root = Path(f"/tmp/plba-mq-{tmp_path.name[-12:]}")  # QMP sockets want short paths
    shutil.rmtree(root, ignore_errors=True)

    async def scenario() -> None:
        async with two_nodes(root, ["qemu"]) as (a, b):
            spec = WorkloadSpec("vm1", "vm", "qemu", memory_bytes=64 << 20, params={"ram_fill": "random"})
            info = await a.client.start_workload(spec)
            assert await a.node.driver("qemu").query_status("vm1") == "running"  # type: ignore[attr-defined]
            source_pid = info.pid
            steps = await migrate(a.stub, order("vm1", a, b, kind="vm", method="live"))
            done = steps[-1]
            assert done.state == "completed", done
            assert "transferring" in [s.state for s in steps] and done.driver == "qemu" and done.method == "live"
            # QEMU's own statistics: a random-filled 64 MiB guest moves at least its RAM.
            assert 0 < done.downtime_seconds < 5 and done.transferred_bytes >= 60 << 20
            assert "QEMU: downtime" in done.message
            (moved,) = await b.client.list_workloads()
            assert moved.state == "running" and moved.endpoint == done.workload_endpoint
            target = b.node.driver("qemu")
            assert await target.query_status("vm1") == "running"  # type: ignore[attr-defined]
            await target.close()  # drop its QMP session: our own client connects next
            assert await qmp_status(moved.endpoint) == "running"
            assert moved.pid != source_pid and psutil.pid_exists(moved.pid)
            assert await a.client.list_workloads() == []
            assert not Path(info.endpoint).exists()  # the source's QMP socket went with it
            assert (
                source_pid is None
                or not psutil.pid_exists(source_pid)
                or (psutil.Process(source_pid).status() == psutil.STATUS_ZOMBIE)
            )
            with pytest.raises((OSError, ConnectError)):
                await qmp_status(info.endpoint)

    try:
        asyncio.run(scenario())
    finally:
        shutil.rmtree(root, ignore_errors=True)
