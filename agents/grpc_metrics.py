"""A ``grpc.aio`` server interceptor that counts calls by method and status code and times them.

Usage::

    metrics = NodeMetrics(registry)
    server = grpc.aio.server(interceptors=[MetricsInterceptor(metrics)])

It fills ``plba_grpc_server_handled_total{service,method,code}`` and
``plba_grpc_server_handling_seconds{service,method}``. Only methods the server actually serves
get their own label values; a call to an unknown method counts as ``unknown``/``unknown`` with
code ``UNIMPLEMENTED``, so a client cannot blow up the label set. Streaming calls are timed
from start to the last message. The status is the one the handler set (``context.set_code``,
``context.abort``), ``OK`` on normal return, ``CANCELLED`` when the call was cancelled
(client gone, deadline) and ``UNKNOWN`` for an unhandled exception (what gRPC itself returns).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from agents.metrics import NodeMetrics

__all__ = ["MetricsInterceptor"]

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _split(full_method: str) -> tuple[str, str]:
    # "/plba.executor.v1.Executor/Migrate" -> ("plba.executor.v1.Executor", "Migrate")
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def _code_name(context: Any, default: grpc.StatusCode) -> str:
    getter = getattr(context, "code", None)  # absent on very old grpc contexts: keep the default
    code = getter() if callable(getter) else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio may report the raw integer value
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    return default.name


def _failure_code(exc: BaseException, context: Any) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return _code_name(context, grpc.StatusCode.CANCELLED)
    # context.abort() raises after setting the code; any other exception is UNKNOWN to the client.
    return _code_name(context, grpc.StatusCode.UNKNOWN)


def served_methods() -> list[tuple[str, str]]:
    """(service, method) of every RPC an executor serves: the Executor service and health checks."""
    from schemas import executor_pb2

    service = executor_pb2.DESCRIPTOR.services_by_name["Executor"]
    out = [(service.full_name, m.name) for m in service.methods]
    out.append(("grpc.health.v1.Health", "Check"))
    return out


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every call served; see the module docstring."""

    def __init__(self, metrics: NodeMetrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self._metrics = metrics
        self._clock = clock
        # The methods this server serves start at zero, so that rate() sees their first call.
        for service, method in served_methods():
            metrics.grpc_handling.labels(service, method)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            self._metrics.grpc_handled.labels("unknown", "unknown", grpc.StatusCode.UNIMPLEMENTED.name).inc()
            return handler
        service, method = _split(handler_call_details.method)
        for kind in _KINDS:
            behavior = getattr(handler, kind, None)
            if behavior is not None:
                return handler._replace(**{kind: self._wrap(behavior, service, method)})  # type: ignore[attr-defined]
        return handler

    def _done(self, service: str, method: str, code: str, started: float) -> None:
        self._metrics.grpc_handled.labels(service, method, code).inc()
        self._metrics.grpc_handling.labels(service, method).observe(self._clock() - started)

    def _wrap(self, behavior: Callable[..., Any], service: str, method: str) -> Callable[..., Any]:
        done, clock = self._done, self._clock

        if inspect.isasyncgenfunction(behavior):

            async def stream_wrapper(request: Any, context: Any) -> AsyncIterator[Any]:
                started = clock()
                try:
                    async for item in behavior(request, context):
                        yield item
                except BaseException as exc:
                    done(service, method, _failure_code(exc, context), started)
                    raise
                done(service, method, _code_name(context, grpc.StatusCode.OK), started)

            return stream_wrapper

        if inspect.iscoroutinefunction(behavior):

            async def coro_wrapper(request: Any, context: Any) -> Any:
                started = clock()
                try:
                    result = await behavior(request, context)
                except BaseException as exc:
                    done(service, method, _failure_code(exc, context), started)
                    raise
                done(service, method, _code_name(context, grpc.StatusCode.OK), started)
                return result

            return coro_wrapper

        def sync_wrapper(request: Any, context: Any) -> Any:
            started = clock()
            try:
                result = behavior(request, context)
            except BaseException as exc:
                done(service, method, _failure_code(exc, context), started)
                raise
            done(service, method, _code_name(context, grpc.StatusCode.OK), started)
            return result

        return sync_wrapper
