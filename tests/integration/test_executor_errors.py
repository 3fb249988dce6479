"""Invalid requests to a real executor get precise status codes and messages naming the problem."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agents.executor import build_server, stop_server
from agents.node import Node
from schemas import executor_pb2 as pb
from schemas import executor_pb2_grpc as pb_grpc

StatusCode = grpc.StatusCode


@contextlib.asynccontextmanager
async def stub_for(tmp_path: Path) -> AsyncIterator[pb_grpc.ExecutorStub]:
    """A raw stub (no client-side checks) against a node with the sim and process drivers."""
    node = await Node.open("n1", ["sim", "process"], tmp_path / "n1")
    server, port = await build_server(node, "127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.ExecutorStub(channel)
    finally:
        await channel.close()
        await stop_server(server, 1.0)
        await node.close()


def trace(tmp_path: Path) -> str:
    path = tmp_path / "t.csv"
    path.write_text("step,a\n0,10\n1,20\n")
    return str(path)


async def refusal(call: Any) -> tuple[StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details() or ""


def start(**spec: Any) -> pb.StartWorkloadRequest:
    return pb.StartWorkloadRequest(spec=pb.WorkloadSpec(**spec))


BAD_STARTS = [
    (pb.StartWorkloadRequest(), StatusCode.INVALID_ARGUMENT, "spec: required"),
    (start(driver="sim"), StatusCode.INVALID_ARGUMENT, "spec.workload_id: required"),
    (start(workload_id="w"), StatusCode.INVALID_ARGUMENT, "spec.driver: required"),
    (start(workload_id="no spaces", driver="sim"), StatusCode.INVALID_ARGUMENT, "spec.workload_id: 'no spaces'"),
    (start(workload_id="w", driver="sim", kind="pod"), StatusCode.INVALID_ARGUMENT, "spec.kind: 'pod': must be one of"),
    (start(workload_id="w", driver="sim", memory_bytes=0), StatusCode.INVALID_ARGUMENT, "spec.memory_bytes: must be"),
    (start(workload_id="w", driver="sim", cpu_cores=-2), StatusCode.INVALID_ARGUMENT, "spec.cpu_cores: must be"),
    (start(workload_id="w", driver="sim", priority=5000), StatusCode.INVALID_ARGUMENT, "spec.priority: must be in"),
    (start(workload_id="w", driver="docker"), StatusCode.INVALID_ARGUMENT, "unknown driver 'docker'"),
    (start(workload_id="w", driver="qemu"), StatusCode.FAILED_PRECONDITION, "driver 'qemu' is not enabled on node n1"),
    (start(workload_id="w", driver="process", kind="vm"), StatusCode.INVALID_ARGUMENT, "hosts kind container, not vm"),
    (start(workload_id="w", driver="sim"), StatusCode.INVALID_ARGUMENT, "driver sim needs params trace"),
    (
        start(workload_id="w", driver="sim", params={"trace": "no-such-trace", "series": "1"}),
        StatusCode.INVALID_ARGUMENT,
        "trace 'no-such-trace' is neither a shared trace",
    ),
    (
        start(workload_id="w", driver="process", params={"port": "99999"}),
        StatusCode.INVALID_ARGUMENT,
        "param port: port must be in 1..65535",
    ),
    (
        start(workload_id="w", driver="process", params={"env.PLBA_STATE_DIR": "/"}),
        StatusCode.INVALID_ARGUMENT,
        "param env.PLBA_STATE_DIR: not a settable variable",
    ),
]


@pytest.mark.parametrize(("request_", "code", "message"), BAD_STARTS)
def test_invalid_starts(tmp_path, request_, code, message):
    async def scenario() -> tuple[StatusCode, str]:
        async with stub_for(tmp_path) as stub:
            return await refusal(stub.StartWorkload(request_, timeout=30))

    got_code, details = asyncio.run(scenario())
    assert got_code == code
    assert message in details


def test_conflicts_and_unknown_ids(tmp_path):
    async def scenario() -> None:
        async with stub_for(tmp_path) as stub:
            request = start(workload_id="w", driver="sim", params={"trace": trace(tmp_path), "series": "a"})
            await stub.StartWorkload(request, timeout=30)
            code, details = await refusal(stub.StartWorkload(request, timeout=30))
            assert (code, details) == (StatusCode.ALREADY_EXISTS, "workload 'w' already runs on node n1")
            code, details = await refusal(stub.StopWorkload(pb.StopWorkloadRequest(workload_id="x"), timeout=30))
            assert (code, details) == (StatusCode.NOT_FOUND, "no workload 'x' on node n1")
            code, details = await refusal(stub.StopWorkload(pb.StopWorkloadRequest(), timeout=30))
            assert (code, details) == (StatusCode.INVALID_ARGUMENT, "workload_id: required")
            code, details = await refusal(stub.GetUsage(pb.GetUsageRequest(workload_ids=["w", "x"]), timeout=30))
            assert (code, details) == (StatusCode.NOT_FOUND, "no workload 'x' on node n1")
            code, details = await refusal(stub.GetUsage(pb.GetUsageRequest(workload_ids=["w", ""]), timeout=30))
            assert (code, details) == (StatusCode.INVALID_ARGUMENT, "workload_ids[1]: empty id")
            code, details = await refusal(stub.ListWorkloads(pb.ListWorkloadsRequest(driver="qemu"), timeout=30))
            assert code == StatusCode.FAILED_PRECONDITION and "driver 'qemu' is not enabled" in details
            reply = await stub.ListWorkloads(pb.ListWorkloadsRequest(driver="process"), timeout=30)
            assert (reply.node_id, list(reply.workloads)) == ("n1", [])

    asyncio.run(scenario())


def test_malformed_migration_calls_get_precise_statuses(tmp_path):
    async def scenario() -> list[tuple[str, StatusCode, str]]:
        async with stub_for(tmp_path) as stub:
            results = []

            async def drain(call: Any) -> None:
                async for _ in call:
                    pass

            async def chunks() -> AsyncIterator[pb.TransferChunk]:
                yield pb.TransferChunk(order_id="o1", seq=0, path="state/x", data=b"abc")

            calls = {
                "Migrate": drain(stub.Migrate(pb.MigrateRequest(order=pb.MigrationOrder(order_id="o1")), timeout=30)),
                "PrepareIncoming": stub.PrepareIncoming(pb.PrepareIncomingRequest(), timeout=30),
                "Transfer": stub.Transfer(chunks(), timeout=30),
                "Switch": stub.Switch(pb.SwitchRequest(order_id="o1"), timeout=30),
                "Commit": stub.Commit(pb.CommitRequest(order_id="o1"), timeout=30),
                "MigrationStatus": stub.MigrationStatus(pb.MigrationStatusRequest(order_id="o1"), timeout=30),
                "MigrationStatus ": stub.MigrationStatus(pb.MigrationStatusRequest(order_id="../x"), timeout=30),
            }
            for name, call in calls.items():
                code, details = await refusal(call)
                results.append((name, code, details))
            # Abort of an order never prepared here is answered (and remembered as aborted).
            reply = await stub.Abort(pb.AbortRequest(order_id="o1"), timeout=30)
            results.append(("Abort", StatusCode.OK, reply.state))
            return results

    got = {
        name.strip() + ("/bad" if name.endswith(" ") else ""): (code, details)
        for name, code, details in asyncio.run(scenario())
    }
    assert got["Migrate"][0] == StatusCode.INVALID_ARGUMENT and got["Migrate"][1].startswith("order.workload_id")
    assert got["PrepareIncoming"] == (StatusCode.INVALID_ARGUMENT, "order: required")
    for name in ("Transfer", "Switch", "Commit", "MigrationStatus"):
        assert got[name][0] == StatusCode.NOT_FOUND and "o1" in got[name][1], name
    assert got["MigrationStatus/bad"][0] == StatusCode.INVALID_ARGUMENT
    assert got["Abort"] == (StatusCode.OK, "aborted")
