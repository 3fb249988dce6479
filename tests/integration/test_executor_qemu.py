"""A real QEMU VM started, listed, measured and stopped through the executor's gRPC API."""

from __future__ import annotations

import asyncio
import shutil

import psutil
import pytest

from agents.executor import build_server, stop_server
from agents.executor_client import ExecutorCallError, ExecutorClient
from agents.node import Node
from schemas import executor_pb2 as pb

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 is not installed"),
]


def test_a_vm_over_grpc(tmp_path):
    async def scenario() -> None:
        node = await Node.open("n1", ["qemu"], tmp_path / "n1")
        server, port = await build_server(node, "127.0.0.1:0")
        await server.start()
        try:
            async with ExecutorClient(f"127.0.0.1:{port}", timeout_seconds=60) as client:
                info = await client.start_workload_proto(
                    pb.WorkloadSpec(workload_id="vm1", driver="qemu", memory_bytes=64 << 20)
                )
                assert (info.spec.kind, info.state) == ("vm", "running") and info.pid
                (listed,) = await client.list_workloads("qemu")
                assert (listed.spec.workload_id, listed.pid) == ("vm1", info.pid)
                (usage,) = await client.get_usage(["vm1"])
                assert usage.mem_used_bytes > 0
                with pytest.raises(ExecutorCallError) as err:
                    await client.start_workload_proto(
                        pb.WorkloadSpec(workload_id="vm2", driver="qemu", kind="container")
                    )
                assert err.value.code.name == "INVALID_ARGUMENT"
                await client.stop_workload("vm1")
                assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == psutil.STATUS_ZOMBIE
                assert await client.list_workloads() == []
        finally:
            await stop_server(server, 1.0)
            await node.close()

    asyncio.run(scenario())
