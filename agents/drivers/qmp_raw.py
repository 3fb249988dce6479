"""The raw bound of a QEMU live migration: two QEMUs and plain QMP, no PLBA code path.

``plba bench migrate --driver qemu`` compares PLBA's migrations with this: the same guest
(the argv comes from the pure :func:`~agents.drivers.qemu_args.build_command`, so both sides
run identical machines), the same migration parameters, and nothing else — no driver state,
journal, gRPC or progress reporting. QEMU's own statistics are returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient

from agents.drivers.qemu_args import (
    QMP_SOCKET_NAME,
    MigrationStats,
    QemuConfig,
    build_command,
    incoming_uri,
    stats_from_query_migrate,
)

DEFAULT_DOWNTIME_LIMIT_MS = 300
DEFAULT_MAX_BANDWIDTH_BYTES_PER_SECOND = 4 * 1024 * 1024 * 1024


class RawMigrationError(RuntimeError):
    """The raw migration did not complete."""


class _Qemu:
    def __init__(self, binary: str, config: QemuConfig, vm_dir: Path, *, incoming: bool, fill: Path | None) -> None:
        vm_dir.mkdir(parents=True, exist_ok=True)
        self.dir = vm_dir
        argv = build_command(binary, config, pidfile=vm_dir / "qemu.pid", incoming=incoming, fill_file=fill)
        with open(vm_dir / "qemu.log", "ab") as log:
            self.popen = subprocess.Popen(
                argv, cwd=vm_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        self.qmp = QMPClient(vm_dir.name)

    async def connect(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        path = str(self.dir / QMP_SOCKET_NAME)
        while True:
            if self.popen.poll() is not None:
                raise RawMigrationError(f"QEMU exited with {self.popen.returncode}: see {self.dir / 'qemu.log'}")
            try:
                await self.qmp.connect(path)
                return
            except Exception:
                if loop.time() > deadline:
                    raise
            await asyncio.sleep(0.01)

    async def cmd(self, name: str, args: dict[str, Any] | None = None) -> Any:
        return await asyncio.wait_for(self.qmp.execute(name, args), 30)

    async def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.qmp.execute("quit"), 5)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.popen.wait), 5)
            except TimeoutError:
                self.popen.kill()
                await asyncio.to_thread(self.popen.wait)
        with contextlib.suppress(Exception):
            await self.qmp.disconnect()


async def raw_migrate(
    memory_bytes: int,
    workdir: Path,
    *,
    ram_fill: str = "zero",
    fill_file: Path | None = None,
    downtime_limit_ms: int = DEFAULT_DOWNTIME_LIMIT_MS,
    max_bandwidth_bytes_per_second: int = DEFAULT_MAX_BANDWIDTH_BYTES_PER_SECOND,
    binary: str = "qemu-system-x86_64",
    timeout_seconds: float = 600.0,
) -> MigrationStats:
    """Start a source and a target QEMU under ``workdir``, live-migrate, stop both.

    ``ram_fill="random"`` needs ``fill_file`` (random bytes, exactly ``memory_bytes`` long) as
    the source's RAM. ``wall_seconds`` of the result runs from starting the target to the
    target answering ``running``, which is what PLBA's path does between prepare and finish.
    """
    exe = shutil.which(binary)
    if exe is None:
        raise RawMigrationError(f"{binary} not found on PATH")
    config = QemuConfig(workload_id="raw", memory_bytes=memory_bytes, vcpus=1, ram_fill=ram_fill)
    source = _Qemu(exe, config, workdir / "src", incoming=False, fill=fill_file)
    target: _Qemu | None = None
    try:
        await source.connect(30)
        if (await source.cmd("query-status"))["status"] != "running":
            raise RawMigrationError("the source VM is not running")
        t0 = time.perf_counter()
        target = _Qemu(exe, config, workdir / "dst", incoming=True, fill=None)
        await target.connect(30)
        await target.cmd("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
        uri = incoming_uri(await target.cmd("query-migrate"))
        params = {"downtime-limit": downtime_limit_ms, "max-bandwidth": max_bandwidth_bytes_per_second}
        await source.cmd("migrate-set-parameters", params)
        # Wait on QEMU's MIGRATION events rather than polling: every QMP command takes the big
        # QEMU lock the migration needs, so a tight poll would slow the very thing it bounds.
        await source.cmd("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
        deadline = time.perf_counter() + timeout_seconds
        with source.qmp.listener("MIGRATION") as events:
            await source.cmd("migrate", {"uri": uri})
            status = "setup"
            while status != "completed":
                event = await asyncio.wait_for(events.get(), max(deadline - time.perf_counter(), 0.001))
                data: Any = event["data"]
                status = str(data["status"])
                if status in ("failed", "cancelled"):
                    raise RawMigrationError(f"raw migration ended {status}")
        # 'completed' precedes the final statistics; they are set once the source is postmigrate.
        while (await source.cmd("query-status"))["status"] != "postmigrate":
            if time.perf_counter() > deadline:
                raise RawMigrationError("the source never reached postmigrate")
            await asyncio.sleep(0.001)
        while (await target.cmd("query-status"))["status"] != "running":
            if time.perf_counter() > deadline:
                raise RawMigrationError("the target did not start running")
            await asyncio.sleep(0.002)
        wall = time.perf_counter() - t0
        stats = stats_from_query_migrate(await source.cmd("query-migrate"))
        return dataclasses.replace(stats, wall_seconds=wall)
    finally:
        await source.kill()
        if target is not None:
            await target.kill()
