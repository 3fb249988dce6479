"""The client's contract: retries only idempotent calls on UNAVAILABLE, a deadline on every call,
and a server that drains calls in flight on graceful shutdown."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from agents.executor import ExecutorService, build_server, stop_server
from agents.executor_client import IDEMPOTENT_METHODS, ExecutorCallError, ExecutorClient, service_config
from agents.node import Node
from schemas import executor_pb2 as pb


class FlakyService(ExecutorService):
    """Answers UNAVAILABLE to the first call of each method; ListWorkloads can be held at a gate."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.calls: dict[str, int] = {}
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def _flaky(self, name: str, context: grpc.aio.ServicerContext) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "flaky: try again")

    async def ListWorkloads(self, request, context):  # type: ignore[no-untyped-def]
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        else:
            await self._flaky("ListWorkloads", context)
        return await super().ListWorkloads(request, context)

    async def StartWorkload(self, request, context):  # type: ignore[no-untyped-def]
        await self._flaky("StartWorkload", context)
        return await super().StartWorkload(request, context)


async def serve(tmp_path):  # type: ignore[no-untyped-def]
    node = await Node.open("n1", ["sim"], tmp_path / "n1")
    service = FlakyService(node)
    server, port = await build_server(node, "127.0.0.1:0", service=service)
    await server.start()
    return node, service, server, f"127.0.0.1:{port}"


def test_service_config_retries_only_idempotent_calls_on_unavailable():
    (method_config,) = json.loads(service_config())["methodConfig"]
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    names = {n["method"] for n in method_config["name"]}
    assert names == {*IDEMPOTENT_METHODS, "Check"}
    assert not names & {"StartWorkload", "StopWorkload", "Migrate", "Transfer", "Switch"}


def test_an_idempotent_call_is_retried_and_a_start_is_not(tmp_path):
    async def scenario() -> None:
        node, service, server, target = await serve(tmp_path)
        try:
            async with ExecutorClient(target, timeout_seconds=30) as client:
                assert await client.list_workloads() == []
                assert service.calls["ListWorkloads"] == 2  # the UNAVAILABLE answer was retried
                with pytest.raises(ExecutorCallError) as err:
                    await client.start_workload_proto(pb.WorkloadSpec(workload_id="w", driver="sim"))
                assert err.value.code == grpc.StatusCode.UNAVAILABLE and "flaky: try again" in str(err.value)
                assert service.calls["StartWorkload"] == 1  # never repeated behind the caller's back
        finally:
            await stop_server(server, 1.0)
            await node.close()

    asyncio.run(scenario())


def test_every_call_has_a_deadline(tmp_path):
    async def scenario() -> None:
        node, service, server, target = await serve(tmp_path)
        service.gate = asyncio.Event()  # ListWorkloads never answers
        try:
            async with ExecutorClient(target, timeout_seconds=0.2) as client:
                with pytest.raises(ExecutorCallError) as err:
                    await client.list_workloads()
                assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
                assert str(err.value) == f"node at {target} did not answer ListWorkloads within 0.2 s"
        finally:
            service.gate.set()
            await stop_server(server, 1.0)
            await node.close()

    asyncio.run(scenario())


def test_graceful_shutdown_finishes_calls_in_flight_and_refuses_new_ones(tmp_path):
    async def scenario() -> None:
        node, service, server, target = await serve(tmp_path)
        service.gate = asyncio.Event()
        try:
            async with ExecutorClient(target, timeout_seconds=30) as client:
                in_flight = asyncio.create_task(client.list_workloads())
                await service.entered.wait()
                stopping = asyncio.create_task(stop_server(server, 30.0))
                async with ExecutorClient(target, timeout_seconds=30) as late:
                    for _ in range(200):  # until the server refuses new calls
                        try:
                            await late.check_health()
                        except ExecutorCallError as exc:
                            # A stopping server refuses a new connection (UNAVAILABLE) or cancels a
                            # call on a connection it still accepted (CANCELLED), depending on timing.
                            assert exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
                            break
                        await asyncio.sleep(0.05)
                    else:
                        pytest.fail("the stopping server kept accepting new calls")
                service.gate.set()
                assert await in_flight == []  # the call in flight completed normally
                await stopping
        finally:
            service.gate.set()
            await node.close()

    asyncio.run(scenario())
