"""The gRPC metrics interceptor on a real grpc.aio server (loopback, ephemeral port)."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from agents.grpc_metrics import MetricsInterceptor
from agents.metrics import NodeMetrics

SERVICE = "plba.test.Echo"


def _identity(b: bytes) -> bytes:
    return b


async def _say(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if request == b"bad":
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
    if request == b"boom":
        raise RuntimeError("handler bug")
    if request == b"exists":
        context.set_code(grpc.StatusCode.ALREADY_EXISTS)
        context.set_details("already there")
        return b""
    return request


async def _count(request: bytes, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
    for i in range(int(request.decode())):
        yield str(i).encode()
    if request == b"2":
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "two is too many")


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Say": grpc.unary_unary_rpc_method_handler(_say, _identity, _identity),
            "Count": grpc.unary_stream_rpc_method_handler(_count, _identity, _identity),
        },
    )


async def _exercise(metrics: NodeMetrics) -> None:
    server = grpc.aio.server(interceptors=[MetricsInterceptor(metrics)])
    server.add_generic_rpc_handlers((_handlers(),))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            say = channel.unary_unary(f"/{SERVICE}/Say", _identity, _identity)
            count = channel.unary_stream(f"/{SERVICE}/Count", _identity, _identity)
            assert await say(b"hi", timeout=5) == b"hi"
            assert await say(b"hello", timeout=5) == b"hello"
            for payload, code in (
                (b"bad", grpc.StatusCode.INVALID_ARGUMENT),
                (b"boom", grpc.StatusCode.UNKNOWN),
                (b"exists", grpc.StatusCode.ALREADY_EXISTS),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await say(payload, timeout=5)
                assert err.value.code() == code
            assert [m async for m in count(b"3", timeout=5)] == [b"0", b"1", b"2"]
            with pytest.raises(grpc.aio.AioRpcError):
                _ = [m async for m in count(b"2", timeout=5)]
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            for i in range(3):  # random method names must not become label values
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await channel.unary_unary(f"/{SERVICE}/Nope{i}", _identity, _identity)(b"", timeout=5)
                assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    v = reg.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_calls_counted_by_method_and_code():
    reg = CollectorRegistry()
    metrics = NodeMetrics(reg, process_metrics=False)
    asyncio.run(_exercise(metrics))
    handled = "plba_grpc_server_handled_total"
    assert _value(reg, handled, service=SERVICE, method="Say", code="OK") == 2
    assert _value(reg, handled, service=SERVICE, method="Say", code="INVALID_ARGUMENT") == 1
    assert _value(reg, handled, service=SERVICE, method="Say", code="UNKNOWN") == 1
    assert _value(reg, handled, service=SERVICE, method="Say", code="ALREADY_EXISTS") == 1
    assert _value(reg, handled, service=SERVICE, method="Count", code="OK") == 1
    assert _value(reg, handled, service=SERVICE, method="Count", code="FAILED_PRECONDITION") == 1
    assert _value(reg, handled, service="grpc.health.v1.Health", method="Check", code="OK") == 1
    assert _value(reg, handled, service="unknown", method="unknown", code="UNIMPLEMENTED") == 3
    seconds = "plba_grpc_server_handling_seconds_count"
    assert _value(reg, seconds, service=SERVICE, method="Say") == 5
    assert _value(reg, seconds, service=SERVICE, method="Count") == 2
    methods = {
        s.labels["method"] for fam in reg.collect() if fam.name == "plba_grpc_server_handled" for s in fam.samples
    }
    assert methods == {"Say", "Count", "Check", "unknown"}
