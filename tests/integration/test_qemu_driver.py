"""The qemu driver against real QEMU (TCG): lifecycle, usage, live migration, recovery.

Two driver instances with their own state directories stand for two nodes on one host. Every
test checks on teardown that no QEMU it started is left running. Outside CI the tests skip
when QEMU is not installed; with CI=true a missing QEMU fails them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from agents.drivers import create_driver
from agents.drivers.base import (
    AlreadyExists,
    DriverContext,
    InvalidSpec,
    UnknownWorkload,
    WorkloadSpec,
)
from agents.drivers.qemu import (
    MigrationCancelled,
    MigrationError,
    MigrationProgress,
    QemuDriver,
    WorkloadStateError,
)

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(180)]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MIB = 2**20
T = TypeVar("T")


def run(body: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await body()

    return asyncio.run(main())


def qemu_processes(root: Path) -> list[psutil.Process]:
    """Live QEMU processes whose working directory is under ``root`` (zombies are reaped)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if not (proc.info["cmdline"] or [""])[0].endswith(("qemu-system-x86_64", "qemu-system-i386")):
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                try:
                    os.waitpid(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                continue
            if Path(proc.cwd()).resolve().is_relative_to(root.resolve()):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def qemu_installed() -> None:
    if shutil.which("qemu-system-x86_64") is None:
        msg = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def nodes(qemu_installed: None, tmp_path: Path) -> Iterator[Callable[[str], QemuDriver]]:
    """Factory of drivers for nodes on this host; kills and reports any QEMU left behind."""

    def make(name: str) -> QemuDriver:
        driver = create_driver("qemu", DriverContext(node_id=name, state_dir=tmp_path / name))  # as a node does
        assert isinstance(driver, QemuDriver)
        return driver

    yield make
    leftovers = qemu_processes(tmp_path)
    for proc in leftovers:
        proc.kill()
    psutil.wait_procs(leftovers, timeout=10)
    assert not leftovers, f"QEMU processes left behind: {[p.pid for p in leftovers]}"


def vm_spec(workload_id: str = "vm-1", memory_mib: int = 64, **params: str) -> WorkloadSpec:
    return WorkloadSpec(workload_id, "vm", "qemu", memory_bytes=memory_mib * MIB, params=dict(params))


def running_instances(tmp_path: Path, workload_id: str) -> list[psutil.Process]:
    return [p for p in qemu_processes(tmp_path) if f"guest={workload_id}" in p.cmdline()]


# ---- lifecycle -------------------------------------------------------------------------------


def test_start_usage_status_stop(nodes: Callable[[str], QemuDriver], tmp_path: Path) -> None:
    node = nodes("a")
    assert node.version().count(".") == 2

    async def body() -> None:
        info = await node.start(vm_spec())
        try:
            assert info.state == "running" and info.pid is not None
            assert info.endpoint == str(tmp_path / "a" / "qemu" / "vm-1" / "qmp.sock")
            assert await node.query_status("vm-1") == "running"
            assert [i.spec.workload_id for i in node.list()] == ["vm-1"]
            proc = psutil.Process(info.pid)
            assert "guest=vm-1" in proc.cmdline()
            first = node.usage("vm-1", time.time())
            await asyncio.sleep(0.6)
            second = node.usage("vm-1", time.time())
            assert first.mem_used_bytes > 0 and second.mem_used_bytes > 0
            assert second.mem_used_bytes == pytest.approx(proc.memory_info().rss, rel=0.5)
            assert second.cpu_cores_used >= 0.0 and second.io_bytes_per_second >= 0.0
            with pytest.raises(AlreadyExists, match="already exists"):
                await node.start(vm_spec())
            await node.stop("vm-1")
            assert gone(info.pid)
            assert node.list() == []
            assert not (tmp_path / "a" / "qemu" / "vm-1").exists()
            with pytest.raises(UnknownWorkload):
                await node.stop("vm-1")
        finally:
            await node.close()

    run(body)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (vm_spec(memory_mib=16), "too small"),
        (WorkloadSpec("vm-1", "vm", "qemu", memory_bytes=64 * MIB + 4096), "whole number of MiB"),
        (vm_spec(kernel="/boot/vmlinuz"), "unknown qemu params kernel"),
        (WorkloadSpec("vm-1", "container", "qemu", memory_bytes=64 * MIB), "hosts kind 'vm'"),
    ],
)
def test_invalid_specs_start_nothing(
    nodes: Callable[[str], QemuDriver], tmp_path: Path, spec: WorkloadSpec, message: str
) -> None:
    node = nodes("a")
    with pytest.raises(InvalidSpec, match=message):
        run(lambda: node.start(spec))
    with pytest.raises(InvalidSpec, match=message):
        run(lambda: node.prepare_incoming(spec))
    assert qemu_processes(tmp_path) == [] and node.list() == []


def test_a_deep_state_directory_still_gets_qmp(qemu_installed: None, tmp_path: Path) -> None:
    # The QMP socket path is beyond the 108 bytes of sun_path.
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    node = QemuDriver(DriverContext(node_id="deep", state_dir=deep))

    async def body() -> None:
        try:
            await node.start(vm_spec("vm-deep"))
            assert len(os.fsencode(node.list()[0].endpoint)) > 108
            assert await node.query_status("vm-deep") == "running"
            await node.stop("vm-deep")
        finally:
            await node.close()

    try:
        run(body)
    finally:
        leftovers = qemu_processes(tmp_path)
        for proc in leftovers:
            proc.kill()
        assert not leftovers


# ---- live migration --------------------------------------------------------------------------


@pytest.mark.parametrize("ram_fill", ["zero", "random"])
def test_live_migration_moves_the_vm(nodes: Callable[[str], QemuDriver], tmp_path: Path, ram_fill: str) -> None:
    source, target = nodes("a"), nodes("b")
    spec = vm_spec(ram_fill=ram_fill)
    seen: list[MigrationProgress] = []

    async def body() -> None:
        try:
            source_pid = (await source.start(spec)).pid
            assert source_pid is not None
            uri = await target.prepare_incoming(spec)
            assert uri.startswith("tcp:127.0.0.1:")
            assert [i.state for i in target.list_incoming()] == ["migrating"]
            assert target.list() == []
            assert await target.query_status("vm-1") == "inmigrate"

            stats = await source.migrate_out("vm-1", uri, progress=seen.append)

            assert stats.status == "completed"
            assert stats.downtime_ms >= 0 and stats.total_ms >= stats.downtime_ms
            assert stats.transferred_bytes > 0
            assert stats.total_bytes >= 64 * MIB
            if ram_fill == "random":  # the random RAM had to cross (bar what the BIOS zeroed)
                assert stats.transferred_bytes >= 0.9 * 64 * MIB
            assert seen and seen[-1].status == "completed" and seen[-1].remaining_bytes == 0
            assert await source.query_status("vm-1") == "postmigrate"
            assert [i.state for i in source.list()] == ["stopped"]

            info = await target.finish_incoming("vm-1")
            assert info.state == "running"
            assert await target.query_status("vm-1") == "running"
            assert target.list_incoming() == [] and [i.spec.workload_id for i in target.list()] == ["vm-1"]
            assert target.usage("vm-1", time.time()).mem_used_bytes > 0

            await source.remove_after_migration("vm-1")
            assert gone(source_pid)
            assert source.list() == []
            assert [p.pid for p in running_instances(tmp_path, "vm-1")] == [info.pid]
            await target.stop("vm-1")
        finally:
            await source.close()
            await target.close()

    run(body)


def test_cancel_leaves_the_source_running_and_the_target_gone(
    nodes: Callable[[str], QemuDriver], tmp_path: Path
) -> None:
    source, target = nodes("a"), nodes("b")
    spec = vm_spec(ram_fill="random")

    async def body() -> None:
        try:
            await source.start(spec)
            uri = await target.prepare_incoming(spec)
            active = asyncio.Event()

            def on_progress(p: MigrationProgress) -> None:
                if p.status == "active" and p.transferred_bytes > 0:
                    active.set()

            # 4 MiB/s for 64 MiB of random RAM: many seconds, so the cancel lands mid-flight.
            task = asyncio.create_task(
                source.migrate_out("vm-1", uri, progress=on_progress, max_bandwidth_bytes_per_second=4 * MIB)
            )
            await asyncio.wait_for(active.wait(), 30)
            await source.cancel_out("vm-1")
            with pytest.raises(MigrationCancelled):
                await task
            assert await source.query_status("vm-1") == "running"
            assert [i.state for i in source.list()] == ["running"]
            await target.abort_incoming("vm-1")
            assert target.list_incoming() == []
            assert len(running_instances(tmp_path, "vm-1")) == 1
            await source.stop("vm-1")
        finally:
            await source.close()
            await target.close()

    run(body)


def test_abort_after_completion_then_rollback_keeps_one_instance(
    nodes: Callable[[str], QemuDriver], tmp_path: Path
) -> None:
    source, target = nodes("a"), nodes("b")
    spec = vm_spec()

    async def body() -> None:
        try:
            source_pid = (await source.start(spec)).pid
            await source.migrate_out("vm-1", await target.prepare_incoming(spec))
            with pytest.raises(MigrationError, match="already completed"):
                await source.cancel_out("vm-1")
            await target.abort_incoming("vm-1")
            await source.rollback_out("vm-1")
            assert await source.query_status("vm-1") == "running"
            with pytest.raises(WorkloadStateError, match="not postmigrate"):
                await source.remove_after_migration("vm-1")
            assert [p.pid for p in running_instances(tmp_path, "vm-1")] == [source_pid]
            await source.stop("vm-1")
        finally:
            await source.close()
            await target.close()

    run(body)


def test_aborting_a_prepared_target_leaves_the_source(nodes: Callable[[str], QemuDriver], tmp_path: Path) -> None:
    source, target = nodes("a"), nodes("b")
    spec = vm_spec()

    async def body() -> None:
        try:
            await source.start(spec)
            await target.prepare_incoming(spec)
            with pytest.raises(WorkloadStateError, match="incoming migration target"):
                await target.remove_after_migration("vm-1")
            await target.abort_incoming("vm-1")
            assert len(running_instances(tmp_path, "vm-1")) == 1
            assert await source.query_status("vm-1") == "running"
            await source.stop("vm-1")
        finally:
            await source.close()
            await target.close()

    run(body)


def test_failed_migration_keeps_the_source_running(nodes: Callable[[str], QemuDriver]) -> None:
    source = nodes("a")

    async def body() -> None:
        try:
            await source.start(vm_spec())
            with pytest.raises(InvalidSpec, match="only tcp"):
                await source.migrate_out("vm-1", "exec:touch /tmp/pwned")
            # A port nothing listens on: QEMU fails the migration.
            with pytest.raises(MigrationError, match="failed"):
                await source.migrate_out("vm-1", "tcp:127.0.0.1:9")
            assert await source.query_status("vm-1") == "running"
            assert [i.state for i in source.list()] == ["running"]
            await source.stop("vm-1")
        finally:
            await source.close()

    run(body)


# ---- recovery --------------------------------------------------------------------------------


def test_recover_adopts_running_vms_after_a_node_restart(nodes: Callable[[str], QemuDriver], tmp_path: Path) -> None:
    pids: dict[str, Any] = {}

    async def before_restart() -> None:
        first = nodes("a")  # dropped when this returns, like a node process that exits
        pids["vm-1"] = (await first.start(vm_spec("vm-1"))).pid
        pids["vm-2"] = (await first.start(vm_spec("vm-2"))).pid
        await first.prepare_incoming(vm_spec("in-1"))
        await first.close()

    run(before_restart)
    os.kill(pids["vm-2"], signal.SIGKILL)  # this one dies while the node is down
    deadline = time.monotonic() + 10
    while not gone(pids["vm-2"]) and time.monotonic() < deadline:
        time.sleep(0.05)

    second = nodes("a")

    async def after_restart() -> None:
        try:
            found = {i.spec.workload_id: i for i in await second.recover()}
            assert set(found) == {"vm-1", "vm-2", "in-1"}
            assert found["vm-1"].state == "running" and found["vm-1"].pid == pids["vm-1"]
            assert found["vm-2"].state == "failed"
            assert second.role("in-1") == "incoming"
            assert await second.query_status("in-1") == "inmigrate"
            assert await second.query_status("vm-1") == "running"
            assert second.usage("vm-1", time.time()).mem_used_bytes > 0
            assert {i.spec.workload_id for i in second.list()} == {"vm-1", "vm-2"}
            assert [i.spec.workload_id for i in await second.recover()].count("vm-1") == 1  # idempotent
            with pytest.raises(AlreadyExists):
                await second.start(vm_spec("vm-1"))
            await second.stop("vm-2")  # removes the dead VM's files
            await second.abort_incoming("in-1")
            await second.stop("vm-1")
            assert gone(pids["vm-1"])
            assert second.list() == [] and not list((tmp_path / "a" / "qemu").glob("*/vm.json"))
        finally:
            await second.close()

    run(after_restart)


def test_a_new_driver_will_not_start_over_a_running_unrecovered_vm(nodes: Callable[[str], QemuDriver]) -> None:
    first = nodes("a")

    async def start_and_leave() -> None:
        await first.start(vm_spec())
        await first.close()

    run(start_and_leave)
    second = nodes("a")

    async def body() -> None:
        try:
            with pytest.raises(AlreadyExists, match="call recover"):
                await second.start(vm_spec())
            await second.recover()
            await second.stop("vm-1")
        finally:
            await second.close()

    run(body)
