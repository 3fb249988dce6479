"""A small asyncio client of a node's executor (``plba.executor.v1.Executor``).

Every call has a deadline (``timeout_seconds``, per client or per call). Retries are declared in
the channel's service config and apply only to idempotent calls (ListWorkloads, GetUsage,
MigrationStatus, health Check) and only on ``UNAVAILABLE``; a start or stop is never repeated
behind the caller's back. Failures raise :class:`ExecutorCallError` with the status code and a
message that says what happened in words (unreachable node, no answer in time, refused and why).

With ``tls_dir`` the channel uses mutual TLS: ``ca.pem`` to verify the node, and this client's
certificate ``client.pem`` / ``client-key.pem`` (or, from another node, ``node.pem`` /
``node-key.pem``).

>>> async def demo():                                                    # doctest: +SKIP
...     async with ExecutorClient("127.0.0.1:50051") as client:
...         return await client.list_workloads()
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agents.drivers.base import Usage, WorkloadInfo, WorkloadSpec
from agents.executor_wire import spec_to_proto, usage_from_proto, workload_from_proto
from schemas import executor_pb2 as pb
from schemas import executor_pb2_grpc as pb_grpc

SERVICE_NAME = "plba.executor.v1.Executor"
IDEMPOTENT_METHODS = ("ListWorkloads", "GetUsage", "MigrationStatus")
DEFAULT_TIMEOUT_SECONDS = 10.0


class ExecutorCallError(Exception):
    """A call to an executor failed; ``code`` is the gRPC status, ``details`` the server's message."""

    def __init__(self, target: str, method: str, code: grpc.StatusCode, details: str, timeout: float) -> None:
        self.target = target
        self.method = method
        self.code = code
        self.details = details
        if code == grpc.StatusCode.UNAVAILABLE:
            message = f"node at {target} is unreachable: {details}"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = f"node at {target} did not answer {method} within {timeout:g} s"
        elif code == grpc.StatusCode.CANCELLED:  # what a stopping gRPC server answers to new calls
            message = f"node at {target} cancelled {method} (is it shutting down?): {details}"
        else:
            message = f"{method} refused by node at {target}: {code.name}: {details}"
        super().__init__(message)


def service_config() -> str:
    """The channel's service config: retry idempotent calls on UNAVAILABLE only."""
    names = [{"service": SERVICE_NAME, "method": m} for m in IDEMPOTENT_METHODS]
    names.append({"service": "grpc.health.v1.Health", "method": "Check"})
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": names,
                    "retryPolicy": {
                        "maxAttempts": 4,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def channel_credentials(tls_dir: Path) -> grpc.ChannelCredentials:
    """mTLS credentials from ``tls_dir`` (see the module docstring); ValueError names missing files."""
    ca = tls_dir / "ca.pem"
    for cert_name, key_name in (("client.pem", "client-key.pem"), ("node.pem", "node-key.pem")):
        cert, key = tls_dir / cert_name, tls_dir / key_name
        if cert.is_file() and key.is_file():
            break
    else:
        raise ValueError(f"TLS directory {tls_dir}: needs client.pem and client-key.pem (or node.pem and node-key.pem)")
    if not ca.is_file():
        raise ValueError(f"TLS directory {tls_dir}: missing ca.pem")
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(), private_key=key.read_bytes(), certificate_chain=cert.read_bytes()
    )


class ExecutorClient:
    """Calls one executor at ``target`` (``host:port``). Use as an async context manager."""

    def __init__(
        self,
        target: str,
        *,
        tls_dir: Path | str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        server_name: str | None = None,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, not {timeout_seconds}")
        self.target = target
        self.timeout_seconds = timeout_seconds
        options: list[tuple[str, Any]] = [("grpc.service_config", service_config()), ("grpc.enable_retries", 1)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls_dir is not None and str(tls_dir) not in ("", "."):
            self._channel = grpc.aio.secure_channel(target, channel_credentials(Path(tls_dir)), options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._stub = pb_grpc.ExecutorStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def __aenter__(self) -> ExecutorClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    @property
    def stub(self) -> pb_grpc.ExecutorStub:
        """The raw stub, for calls this client does not wrap (the migration RPCs)."""
        return self._stub

    async def _call(self, method: str, request: Any, timeout: float | None, stub: Any = None) -> Any:
        deadline = timeout or self.timeout_seconds
        try:
            return await getattr(stub or self._stub, method)(request, timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            raise ExecutorCallError(self.target, method, exc.code(), exc.details() or "", deadline) from exc

    async def start_workload(self, spec: WorkloadSpec, *, timeout: float | None = None) -> WorkloadInfo:
        """Start ``spec`` on the node (``spec.kind`` may be empty: the driver's kind)."""
        reply = await self._call("StartWorkload", pb.StartWorkloadRequest(spec=spec_to_proto(spec)), timeout)
        return workload_from_proto(reply.workload)

    async def start_workload_proto(self, spec: pb.WorkloadSpec, *, timeout: float | None = None) -> WorkloadInfo:
        """Start a workload from its message (lets the node fill defaults such as the kind)."""
        reply = await self._call("StartWorkload", pb.StartWorkloadRequest(spec=spec), timeout)
        return workload_from_proto(reply.workload)

    async def stop_workload(self, workload_id: str, *, timeout: float | None = None) -> float:
        """Stop and remove a workload; returns when it stopped (epoch s)."""
        reply = await self._call("StopWorkload", pb.StopWorkloadRequest(workload_id=workload_id), timeout)
        return float(reply.stopped_at)

    async def list_workloads(self, driver: str = "", *, timeout: float | None = None) -> list[WorkloadInfo]:
        reply = await self._call("ListWorkloads", pb.ListWorkloadsRequest(driver=driver), timeout)
        return [workload_from_proto(w) for w in reply.workloads]

    async def get_usage(self, workload_ids: Iterable[str] = (), *, timeout: float | None = None) -> list[Usage]:
        reply = await self._call("GetUsage", pb.GetUsageRequest(workload_ids=list(workload_ids)), timeout)
        return [usage_from_proto(u) for u in reply.usages]

    async def check_health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The health status name of ``service`` ("" = the server): SERVING, NOT_SERVING…"""
        reply = await self._call("Check", health_pb2.HealthCheckRequest(service=service), timeout, self._health)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
