"""``plba bench migrate``: PLBA's migrations against the runtime's own bound, in one run.

Each run moves one workload of the given size *through PLBA* — two real node executors on
loopback (gRPC servers, journals, the migration protocol: Migrate on the source, PrepareIncoming,
Transfer, Switch, Commit) — and the same size *directly*, as the bound:

* ``qemu``: a fresh VM live-migrated by the executors vs. two bare QEMUs driven by plain QMP
  (:func:`agents.bench_migrate_raw.raw_qemu_migration_async`). Downtime is QEMU's own figure
  on both sides; PLBA's total runs from Migrate accepted to completed (the target QEMU started,
  the VM verified running there and gone from the source), the raw total from starting the
  target QEMU to the target running.
* ``process``: the counter app with a ``state`` ballast moved by snapshot (pre-copy, quiesce,
  delta, restore) vs. a raw checksummed copy of a state directory of that size, during which a
  process would be stopped (downtime = total). PLBA's downtime runs from the SIGTERM to the
  target's port accepting connections.

PLBA and raw runs alternate (raw first on even runs), so load from elsewhere on the host weighs
on both alike; a warm-up (one PLBA move each way, one raw move) is not counted. The result is
a dict (see :func:`summary`); the CLI prints it as JSON or a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.bench_migrate_raw import percentiles, raw_process_copy, raw_qemu_migration_async
from agents.drivers.base import WorkloadSpec
from agents.executor import build_server, stop_server
from agents.executor_client import ExecutorClient
from agents.node import Node
from schemas import executor_pb2 as pb

DRIVERS = ("qemu", "process")
WARMUP_RUNS = 2  # one move each way between the two executors
TARGETS = {"qemu_downtime_ratio": 1.2, "qemu_total_overhead_ms": 200.0, "process_downtime_ms": 100.0}


class BenchError(RuntimeError):
    """A benchmark run failed (a migration did not complete)."""


@dataclass(frozen=True, slots=True)
class Sample:
    downtime_ms: float
    total_ms: float
    transferred_bytes: int


@dataclass
class _Pair:
    nodes: list[Node]
    servers: list[Any]
    clients: list[ExecutorClient]
    endpoints: list[str]


@contextlib.asynccontextmanager
async def _two_executors(root: Path, driver: str) -> AsyncIterator[_Pair]:
    pair = _Pair([], [], [], [])
    try:
        for name in ("bench-a", "bench-b"):
            node = await Node.open(name, [driver], root / name)
            pair.nodes.append(node)
            server, port = await build_server(node, "127.0.0.1:0")
            await server.start()
            pair.servers.append(server)
            await node.migrations.start()
            pair.endpoints.append(f"127.0.0.1:{port}")
            pair.clients.append(ExecutorClient(f"127.0.0.1:{port}", timeout_seconds=120))
        yield pair
    finally:
        for client in pair.clients:
            await client.close()
        for server in pair.servers:
            await stop_server(server, 1.0)
        for node in pair.nodes:
            await node.close()


def _spec(driver: str, workload_id: str, size: int, ram_fill: str) -> WorkloadSpec:
    if driver == "qemu":
        return WorkloadSpec(workload_id, "vm", "qemu", memory_bytes=size, params={"ram_fill": ram_fill})
    command = f"{sys.executable} -m agents.drivers.counter_app --tick 0.05 --state-bytes {size}"
    return WorkloadSpec(workload_id, "container", "process", memory_bytes=64 << 20, params={"command": command})


async def _ready(driver: str, client: ExecutorClient, info: Any) -> None:
    """The workload is fully up (the counter app's ballast written and hashed)."""
    if driver != "process":
        return

    def get() -> None:
        with urllib.request.urlopen(f"http://{info.endpoint}/state", timeout=60) as reply:
            reply.read()

    await asyncio.to_thread(get)


async def plba_run(pair: _Pair, driver: str, size: int, ram_fill: str, index: int) -> Sample:
    """One migration through PLBA (source and target alternate between the two executors)."""
    src, dst = (0, 1) if index % 2 == 0 else (1, 0)
    wid = f"bench-{index}-{uuid.uuid4().hex[:6]}"
    info = await pair.clients[src].start_workload(_spec(driver, wid, size, ram_fill))
    try:
        await _ready(driver, pair.clients[src], info)
        now = time.time()
        order = pb.MigrationOrder(
            order_id=f"bench-{uuid.uuid4().hex[:12]}",
            workload_id=wid,
            kind="vm" if driver == "qemu" else "container",
            source_node=pair.nodes[src].node_id,
            target_node=pair.nodes[dst].node_id,
            target_endpoint=pair.endpoints[dst],
            method="live" if driver == "qemu" else "snapshot",
            issued_at=now,
            deadline_at=now + 600,
            attempt=1,
            reason_code="predicted_overload",
        )
        last = None
        async for step in pair.clients[src].stub.Migrate(pb.MigrateRequest(order=order), timeout=660):
            last = step
        if last is None or last.state != "completed":
            raise BenchError(f"PLBA migration {index} ended {last.state if last else 'without a step'}: {last}")
        return Sample(last.downtime_seconds * 1000.0, last.total_seconds * 1000.0, last.transferred_bytes)
    finally:
        for client in pair.clients:
            with contextlib.suppress(Exception):
                await client.stop_workload(wid)


async def raw_run(driver: str, size: int, ram_fill: str, workdir: Path) -> Sample:
    if driver == "qemu":
        (stats,) = await raw_qemu_migration_async(size, 1, ram_fill=ram_fill, workdir=workdir)
        return Sample(stats.downtime_ms, stats.wall_seconds * 1000.0, stats.transferred_bytes)
    (stats,) = await asyncio.to_thread(raw_process_copy, size, 1, workdir=workdir)
    return Sample(stats.downtime_ms, stats.total_ms, stats.transferred_bytes)


async def bench_async(
    driver: str, size: int, runs: int, *, ram_fill: str = "random", workdir: Path | None = None
) -> dict[str, Any]:
    if driver not in DRIVERS:
        raise ValueError(f"driver must be one of {', '.join(DRIVERS)}, not {driver!r}")
    if runs < 1:
        raise ValueError("runs must be at least 1")
    # Short paths on purpose: QMP sockets live inside.
    root = workdir or Path(tempfile.mkdtemp(prefix="plba-bm-"))
    plba: list[Sample] = []
    raw: list[Sample] = []
    try:
        async with _two_executors(root / "nodes", driver) as pair:
            # Warm-up, not counted: the first moves create the RAM fill files (qemu) and bring
            # code and files into the caches; the fill files are then flushed to disk so their
            # write-back does not compete with the measured runs.
            for warm in range(WARMUP_RUNS):
                await plba_run(pair, driver, size, ram_fill, warm)
            await raw_run(driver, size, ram_fill, root / "raw")
            await asyncio.to_thread(os.sync)
            for i in range(runs):
                if i % 2 == 0:
                    raw.append(await raw_run(driver, size, ram_fill, root / "raw"))
                plba.append(await plba_run(pair, driver, size, ram_fill, i))
                if i % 2 == 1:
                    raw.append(await raw_run(driver, size, ram_fill, root / "raw"))
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return summary(driver, size, ram_fill, plba, raw)


def summary(driver: str, size: int, ram_fill: str, plba: Sequence[Sample], raw: Sequence[Sample]) -> dict[str, Any]:
    """The JSON document of ``plba bench migrate`` (percentiles in milliseconds) and the targets."""
    out: dict[str, Any] = {
        "driver": driver,
        "runs": len(plba),
        "plba_downtime_ms": percentiles([s.downtime_ms for s in plba]),
        "raw_downtime_ms": percentiles([s.downtime_ms for s in raw]),
        "plba_total_ms": percentiles([s.total_ms for s in plba]),
        "raw_total_ms": percentiles([s.total_ms for s in raw]),
        "plba_transferred_bytes": percentiles([float(s.transferred_bytes) for s in plba]),
    }
    if driver == "qemu":
        out.update(memory_bytes=size, ram_fill=ram_fill)
        ratio = out["plba_downtime_ms"]["p50"] / max(out["raw_downtime_ms"]["p50"], 1e-9)
        overhead = out["plba_total_ms"]["p50"] - out["raw_total_ms"]["p50"]
        out["targets"] = {
            "downtime_p50_ratio": ratio,
            "downtime_p50_ratio_max": TARGETS["qemu_downtime_ratio"],
            "total_p50_overhead_ms": overhead,
            "total_p50_overhead_ms_max": TARGETS["qemu_total_overhead_ms"],
            "met": ratio <= TARGETS["qemu_downtime_ratio"] and overhead <= TARGETS["qemu_total_overhead_ms"],
        }
    else:
        out["state_bytes"] = size
        p50 = out["plba_downtime_ms"]["p50"]
        out["targets"] = {
            "downtime_p50_ms": p50,
            "downtime_p50_ms_max": TARGETS["process_downtime_ms"],
            "met": p50 <= TARGETS["process_downtime_ms"],
        }
    return out


def bench(
    driver: str, size: int, runs: int, *, ram_fill: str = "random", workdir: Path | None = None
) -> dict[str, Any]:
    """Synchronous :func:`bench_async`."""
    return asyncio.run(bench_async(driver, size, runs, ram_fill=ram_fill, workdir=workdir))
