"""The dispatcher: carries migration orders out by calling the source node's executor over gRPC.

For each order (from the orders topic) it streams the source executor's ``Migrate`` progress,
publishes every lifecycle step to the migrations topic and the final placement to the placements
topic. ``Migrate`` is idempotent by ``order_id`` (the executor re-attaches to a migration in
progress or replays its outcome), so on ``UNAVAILABLE`` or a broken stream the dispatcher calls
it again until the order's deadline; it never retries on any other status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from schemas import executor_pb2 as pb
from schemas import executor_pb2_grpc as pb_grpc
from streams.live.dispatch import TERMINAL, placement_record, progress_record, status_record

log = logging.getLogger(__name__)

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
# How much longer than the order's own deadline a Migrate stream may stay open.
STREAM_SLACK_SECONDS = 30.0
# How long an order waits for its nodes' executor endpoints (learned from node telemetry): a
# dispatcher that has just started may read an order before the nodes' next sample.
ENDPOINT_WAIT_SECONDS = 30.0


def channel_credentials(tls_dir: Path) -> grpc.ChannelCredentials | None:
    """mTLS client credentials from ``tls_dir`` (ca.pem, client.pem, client-key.pem), or None."""
    if not str(tls_dir) or str(tls_dir) == ".":
        return None
    ca = (tls_dir / "ca.pem").read_bytes()
    cert = (tls_dir / "client.pem").read_bytes()
    key = (tls_dir / "client-key.pem").read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


class Dispatcher:
    """Executes orders against executors; ``endpoint_of(node_id)`` resolves executor addresses."""

    def __init__(
        self,
        endpoint_of: Callable[[str], str | None],
        *,
        credentials: grpc.ChannelCredentials | None = None,
        clock: Callable[[], float] = time.time,
        retry_backoff_seconds: float = 0.5,
    ) -> None:
        self._endpoint_of = endpoint_of
        self._credentials = credentials
        self._clock = clock
        self._backoff = retry_backoff_seconds
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, endpoint: str, node_id: str) -> pb_grpc.ExecutorStub:
        ch = self._channels.get(endpoint)
        if ch is None:
            if self._credentials is not None:
                # Node certificates name the node id (besides loopback): verify the executor as
                # that node wherever its address points.
                options = [("grpc.ssl_target_name_override", node_id)]
                ch = grpc.aio.secure_channel(endpoint, self._credentials, options=options)
            else:
                ch = grpc.aio.insecure_channel(endpoint)
            self._channels[endpoint] = ch
        return pb_grpc.ExecutorStub(ch)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()

    async def _endpoints(self, order: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """The source and target endpoints, waiting a while (not past the deadline) for unknown ones."""
        give_up = min(float(order["deadline_at"]), self._clock() + ENDPOINT_WAIT_SECONDS)
        while True:
            source = self._endpoint_of(order["source_node"])
            target = self._endpoint_of(order["target_node"])
            if (source and target) or self._clock() >= give_up:
                return source, target
            await asyncio.sleep(self._backoff)

    async def execute(self, order: Mapping[str, Any], attempt: int = 1) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Carry out one order; yields ("migrations" | "placements", record) as they happen."""
        source, target = await self._endpoints(order)
        if not source or not target:
            missing = order["source_node"] if not source else order["target_node"]
            yield "migrations", status_record(
                order, "rejected", self._clock(), attempt=attempt,
                error=("unknown_node", f"no executor endpoint known for node {missing!r}"),
            )  # fmt: skip
            return
        request = pb.MigrateRequest(order=_to_pb(order, target, attempt))
        deadline_at = float(order["deadline_at"])
        late_attach = False
        while True:
            terminal = False
            try:
                timeout = max(1.0, deadline_at - self._clock() + STREAM_SLACK_SECONDS)
                async for progress in self._stub(source, order["source_node"]).Migrate(request, timeout=timeout):
                    yield "migrations", progress_record(order, progress, attempt)
                    if progress.state in TERMINAL:
                        terminal = True
                        if progress.state == "completed":
                            yield "placements", placement_record(order, progress, progress.at)
                        break
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code in RETRYABLE and self._clock() < deadline_at:
                    log.warning("order %s: source %s unavailable, re-attaching", order["order_id"], source)
                    await asyncio.sleep(self._backoff)
                    continue
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and not late_attach:
                    # A recovering executor may still converge after the deadline (it waits for
                    # its peer): ask once more for the outcome it journaled.
                    late_attach = True
                    deadline_at = self._clock() + STREAM_SLACK_SECONDS
                    continue
                yield "migrations", status_record(
                    order, "failed" if code != grpc.StatusCode.INVALID_ARGUMENT else "rejected", self._clock(),
                    attempt=attempt, error=(_code_name(code), exc.details() or str(code)),
                )  # fmt: skip
                return
            if terminal:
                return
            # The stream ended without a terminal state (executor restarted): re-attach.
            if self._clock() >= deadline_at:
                yield "migrations", status_record(
                    order, "failed", self._clock(), attempt=attempt,
                    error=("no_outcome", "the source executor never reported an outcome before the deadline"),
                )  # fmt: skip
                return
            await asyncio.sleep(self._backoff)


def _code_name(code: grpc.StatusCode) -> str:
    return str(code.name).lower()


def _to_pb(order: Mapping[str, Any], target_endpoint: str, attempt: int) -> pb.MigrationOrder:
    return pb.MigrationOrder(
        order_id=order["order_id"],
        workload_id=order["workload_id"],
        kind=order["kind"],
        source_node=order["source_node"],
        target_node=order["target_node"],
        target_endpoint=target_endpoint,
        method=order["method"],
        issued_at=float(order["issued_at"]),
        deadline_at=float(order["deadline_at"]),
        dry_run=bool(order.get("dry_run", False)),
        attempt=attempt,
        mem_bytes=int(order.get("mem_bytes") or 0),
        expected_seconds=float(order.get("expected_seconds") or 0.0),
        reason_code=str(order["reason"]["code"]),
    )
