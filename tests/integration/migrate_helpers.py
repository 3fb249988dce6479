"""Shared helpers of the migration tests: two executors on loopback, orders, progress streams."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from agents.executor import build_server, stop_server
from agents.executor_client import ExecutorClient
from agents.node import Capacity, Node
from schemas import executor_pb2 as pb
from schemas import executor_pb2_grpc as pb_grpc

TERMINAL = ("completed", "failed", "rolled_back", "rejected", "expired")


@dataclass
class Served:
    node: Node
    server: grpc.aio.Server
    endpoint: str
    client: ExecutorClient

    @property
    def stub(self) -> pb_grpc.ExecutorStub:
        return self.client.stub


@contextlib.asynccontextmanager
async def served_node(
    root: Path, node_id: str, drivers: Sequence[str], *, tls_dir: Path | None = None, **node_kw: Any
) -> AsyncIterator[Served]:
    node = await Node.open(node_id, list(drivers), root / node_id, tls_dir=tls_dir, **node_kw)
    server, port = await build_server(node, "127.0.0.1:0", tls_dir=tls_dir)
    await server.start()
    await node.migrations.start()
    client_tls = None
    if tls_dir is not None:
        client_tls = tls_dir  # node.pem doubles as a client certificate
    client = ExecutorClient(f"127.0.0.1:{port}", tls_dir=client_tls, timeout_seconds=60)
    try:
        yield Served(node, server, f"127.0.0.1:{port}", client)
    finally:
        await client.close()
        await stop_server(server, 1.0)
        await node.close()


@contextlib.asynccontextmanager
async def two_nodes(root: Path, drivers: Sequence[str], **kw: Any) -> AsyncIterator[tuple[Served, Served]]:
    async with served_node(root, "na", drivers, **kw) as a, served_node(root, "nb", drivers, **kw) as b:
        yield a, b


def order(
    workload_id: str,
    source: Served | str,
    target: Served | str,
    target_endpoint: str = "",
    *,
    kind: str = "container",
    method: str = "snapshot",
    deadline_seconds: float = 60.0,
    order_id: str | None = None,
    **fields: Any,
) -> pb.MigrationOrder:
    now = time.time()
    src = source.node.node_id if isinstance(source, Served) else source
    dst = target.node.node_id if isinstance(target, Served) else target
    endpoint = target_endpoint or (target.endpoint if isinstance(target, Served) else "")
    return pb.MigrationOrder(
        order_id=order_id or f"o-{uuid.uuid4().hex[:12]}",
        workload_id=workload_id,
        kind=kind,
        source_node=src,
        target_node=dst,
        target_endpoint=endpoint,
        method=method,
        issued_at=now,
        deadline_at=now + deadline_seconds,
        attempt=1,
        reason_code="predicted_overload",
        **fields,
    )


async def migrate(
    stub: pb_grpc.ExecutorStub, o: pb.MigrationOrder, timeout: float = 120.0
) -> list[pb.MigrationProgress]:
    """Call Migrate and collect the steps until the terminal one."""
    steps = []
    async for step in stub.Migrate(pb.MigrateRequest(order=o), timeout=timeout):
        steps.append(step)
        if step.state in TERMINAL:
            break
    return steps


async def until(predicate: Any, what: str, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"never happened: {what}")


def trace_file(root: Path) -> Path:
    path = root / "trace.csv"
    path.write_text("step,a\n0,20\n1,40\n2,60\n3,80\n4,10\n5,90\n")
    return path


__all__ = ["Capacity", "Served", "migrate", "order", "served_node", "trace_file", "two_nodes", "until"]
