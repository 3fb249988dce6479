"""The node executor's gRPC server (``plba.executor.v1.Executor``, see ``schemas/executor.proto``).

:func:`build_server` returns a ``grpc.aio`` server serving the executor and the standard
``grpc.health.v1`` health service on a ``host:port`` (port 0: any free port, the real one is
returned), optionally with mutual TLS. :func:`stop_server` is the graceful shutdown: health says
NOT_SERVING, new calls are refused, in-flight calls get the grace period.

Errors: every domain error (:class:`~agents.drivers.base.DriverError`) is answered with the
status its ``code`` names and its message (``INVALID_ARGUMENT``, ``NOT_FOUND``,
``ALREADY_EXISTS``, ``FAILED_PRECONDITION``, ``RESOURCE_EXHAUSTED``…); anything else is a bug,
logged with its traceback and answered ``INTERNAL`` without internals. The migration RPCs are
served by the node's :class:`~agents.migration.MigrationManager` (``node.migrations``).
"""

from __future__ import annotations

import functools
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from agents.drivers.base import DriverError, InvalidSpec
from agents.executor_wire import (
    ids_from_proto,
    spec_from_proto,
    status_of,
    usage_to_proto,
    workload_to_proto,
)
from agents.node import Node, NodeConfigError
from schemas import executor_pb2 as pb
from schemas import executor_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "plba.executor.v1.Executor"
TLS_FILES = ("ca.pem", "node.pem", "node-key.pem")
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a snapshot chunk (1 MiB) with room to spare
_LISTEN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$")
_HEALTH: weakref.WeakKeyDictionary[grpc.aio.Server, health_aio.HealthServicer] = weakref.WeakKeyDictionary()

R = TypeVar("R")


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` → (host, port); NodeConfigError if malformed."""
    match = _LISTEN.match(listen.strip())
    if match is None or int(match.group(2)) > 65535:
        raise NodeConfigError(f"listen address {listen!r}: write HOST:PORT (port 0..65535, 0 = any free port)")
    return match.group(1), int(match.group(2))


def server_credentials(tls_dir: Path) -> grpc.ServerCredentials:
    """mTLS credentials from ``tls_dir``: ca.pem (trusted CA), node.pem and node-key.pem; clients must
    present a certificate signed by that CA."""
    missing = [name for name in TLS_FILES if not (tls_dir / name).is_file()]
    if missing:
        raise NodeConfigError(f"TLS directory {tls_dir}: missing {', '.join(missing)} (needs {', '.join(TLS_FILES)})")
    ca, cert, key = ((tls_dir / name).read_bytes() for name in TLS_FILES)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def _rpc(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Answer domain errors with their status and message; anything else is INTERNAL (and logged)."""

    @functools.wraps(method)
    async def wrapper(self: ExecutorService, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except DriverError as exc:
            log.info("%s refused: %s: %s", method.__name__, status_of(exc).name, exc)
            await context.abort(status_of(exc), str(exc))
        except Exception:
            log.exception("%s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{method.__name__} failed inside the executor; see its log")
        raise AssertionError("unreachable: abort raises")

    return wrapper


class ExecutorService(pb_grpc.ExecutorServicer):
    """The executor's RPCs over a :class:`~agents.node.Node`."""

    def __init__(self, node: Node, clock: Callable[[], float] = time.time) -> None:
        self._node = node
        self._clock = clock

    def _default_kind(self, driver: str) -> str:
        return self._node.driver(driver).kind

    # ---- workloads -------------------------------------------------------------------------

    @_rpc
    async def StartWorkload(
        self, request: pb.StartWorkloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartWorkloadResponse:
        spec = spec_from_proto(request.spec if request.HasField("spec") else None, self._default_kind)
        info = await self._node.start_workload(spec)
        log.info("started %s workload %s (%s)", spec.driver, spec.workload_id, spec.kind)
        return pb.StartWorkloadResponse(node_id=self._node.node_id, workload=workload_to_proto(info))

    @_rpc
    async def StopWorkload(
        self, request: pb.StopWorkloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopWorkloadResponse:
        if not request.workload_id:
            raise InvalidSpec("workload_id: required")
        await self._node.stop_workload(request.workload_id)
        log.info("stopped workload %s", request.workload_id)
        return pb.StopWorkloadResponse(
            node_id=self._node.node_id, workload_id=request.workload_id, stopped_at=self._clock()
        )

    @_rpc
    async def ListWorkloads(
        self, request: pb.ListWorkloadsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkloadsResponse:
        infos = self._node.list_workloads(request.driver or None)
        return pb.ListWorkloadsResponse(node_id=self._node.node_id, workloads=[workload_to_proto(i) for i in infos])

    @_rpc
    async def GetUsage(self, request: pb.GetUsageRequest, context: grpc.aio.ServicerContext) -> pb.GetUsageResponse:
        ids = ids_from_proto(list(request.workload_ids))
        now = self._clock()
        usages = [self._node.usage(wid, now) for wid in ids] if ids else self._node.usage_all(now)
        return pb.GetUsageResponse(
            node_id=self._node.node_id, sampled_at=now, usages=[usage_to_proto(u) for u in usages]
        )

    # ---- migration (issue #6): see agents.migration ------------------------------------------

    async def Migrate(
        self, request: pb.MigrateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.MigrationProgress]:
        """Carry out an order (as its source) and stream its progress until a terminal state.

        The migration runs in the executor, not in this call: a client that disconnects and calls
        again with the same order re-attaches to it (or gets its outcome replayed).
        """
        if not request.HasField("order"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "order: required")
        try:
            async for step in self._node.migrations.follow(request.order):
                yield step
        except DriverError as exc:
            log.info("Migrate refused: %s: %s", status_of(exc).name, exc)
            await context.abort(status_of(exc), str(exc))

    @_rpc
    async def PrepareIncoming(
        self, request: pb.PrepareIncomingRequest, context: grpc.aio.ServicerContext
    ) -> pb.PrepareIncomingResponse:
        if not request.HasField("order"):
            raise InvalidSpec("order: required")
        return await self._node.migrations.target.prepare(request)

    @_rpc
    async def Transfer(
        self, request_iterator: AsyncIterator[pb.TransferChunk], context: grpc.aio.ServicerContext
    ) -> pb.TransferResponse:
        return await self._node.migrations.target.transfer(request_iterator)

    @_rpc
    async def Switch(self, request: pb.SwitchRequest, context: grpc.aio.ServicerContext) -> pb.SwitchResponse:
        return await self._node.migrations.target.switch(request)

    @_rpc
    async def Commit(self, request: pb.CommitRequest, context: grpc.aio.ServicerContext) -> pb.CommitResponse:
        return await self._node.migrations.target.commit(request)

    @_rpc
    async def Abort(self, request: pb.AbortRequest, context: grpc.aio.ServicerContext) -> pb.AbortResponse:
        return await self._node.migrations.target.abort(request)

    @_rpc
    async def MigrationStatus(
        self, request: pb.MigrationStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.MigrationStatusResponse:
        return self._node.migrations.status(request.order_id)


async def build_server(
    node: Node,
    listen: str,
    *,
    tls_dir: Path | str | None = None,
    service: ExecutorService | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, int]:
    """A server for ``node`` bound to ``listen`` (not started); returns it and the bound port.

    ``tls_dir`` (non-empty) turns on mutual TLS: see :func:`server_credentials`. Call it inside
    the event loop that will run the server.
    """
    host, port = parse_listen(listen)
    if tls_dir is not None and str(tls_dir) not in ("", ".") and node.tls_dir is None:
        node.tls_dir = Path(tls_dir)  # the node calls other executors with the same certificate
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),  # a second node on the same port must fail, not share it
        ],
    )
    pb_grpc.add_ExecutorServicer_to_server(service or ExecutorService(node), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"{host or '0.0.0.0'}:{port}"
    try:
        if tls_dir is not None and str(tls_dir) not in ("", "."):
            bound = server.add_secure_port(address, server_credentials(Path(tls_dir)))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise NodeConfigError(f"cannot listen on {listen}: {exc} (port in use, or not this host's address?)") from exc
    if bound == 0:
        raise NodeConfigError(f"cannot listen on {listen} (port in use, or not an address of this host?)")
    if node.endpoint is None and host not in ("", "0.0.0.0", "::", "[::]"):
        node.endpoint = f"{host}:{bound}"  # what peers call back (run_node sets the advertised one)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    _HEALTH[server] = health
    return server, bound


async def stop_server(server: grpc.aio.Server, grace_seconds: float = 5.0) -> None:
    """Graceful shutdown: NOT_SERVING, refuse new calls, let in-flight calls finish within the grace."""
    health = _HEALTH.pop(server, None)
    if health is not None:
        await health.enter_graceful_shutdown()
    await server.stop(grace_seconds)
