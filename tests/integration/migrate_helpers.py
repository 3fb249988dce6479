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


# ---- `plba node` as real processes (crash tests, the dispatcher end to end) --------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeProcess:
    """One `plba node` process on a fixed port (so peers find it again after a restart)."""

    def __init__(
        self,
        node_id: str,
        state_dir: Path,
        drivers: str,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        extra: Sequence[str] = ("--no-telemetry",),
        log_dir: Path | None = None,
    ) -> None:
        self.node_id = node_id
        self.state_dir = state_dir
        self.drivers = drivers
        self.port = port or free_port()
        self.env = dict(env or {})
        self.extra = list(extra)
        self.log_dir = log_dir or state_dir
        self.proc: Any = None
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, **env: str) -> NodeProcess:
        import os
        import subprocess
        import sys

        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{self.node_id}-{self.starts}.log", "wb")  # noqa: SIM115 - the child holds it
        cmd = [
            sys.executable, "-m", "plba.cli.main", "node", "--node-id", self.node_id, "--listen", self.endpoint,
            "--state-dir", str(self.state_dir), "--drivers", self.drivers, *self.extra,
        ]  # fmt: skip
        full_env = {**os.environ, "PLBA_LOG_LEVEL": "INFO", **self.env, **env}
        repo = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=repo, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{self.node_id}-*.log")))

    async def ready(self, timeout: float = 60.0) -> None:
        """Wait until the executor answers health checks."""
        deadline = time.monotonic() + timeout
        async with ExecutorClient(self.endpoint, timeout_seconds=2) as client:
            while True:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise AssertionError(f"node {self.node_id} exited with {code}:\n{self.log()[-3000:]}")
                try:
                    if await client.check_health() == "SERVING":
                        return
                except Exception:  # not up yet
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"node {self.node_id} never served:\n{self.log()[-3000:]}")
                await asyncio.sleep(0.1)

    async def exited(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"node {self.node_id} did not exit:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)
        return int(self.proc.returncode)

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
