"""The ``qemu`` driver: real QEMU virtual machines controlled over QMP, with live migration.

Each VM lives in ``<state-dir>/qemu/<workload-id>/``: ``qmp.sock`` (its QMP monitor),
``qemu.pid`` (written by QEMU), ``vm.json`` (spec and role, rewritten atomically) and
``qemu.log`` (QEMU's stderr). QEMU runs in its own session, so VMs outlive a node process that
crashes or restarts; :meth:`QemuDriver.recover` adopts them again from those files.

A migration involves two driver instances (one per node) and is driven by the executor::

    uri = await target.prepare_incoming(spec)                 # target QEMU listens
    stats = await source.migrate_out(wid, uri, progress=cb)   # pre-copy; QEMU's own figures
    await target.finish_incoming(wid)                         # target verified running
    await source.remove_after_migration(wid)                  # source (postmigrate) quits

To back out before completion: ``cancel_out`` on the source, then ``abort_incoming`` on the
target. After completion: ``abort_incoming`` on the target, then ``rollback_out`` on the source.
Either way exactly one instance runs afterwards.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import psutil
from qemu.qmp import ExecuteError, QMPError

from agents.drivers.base import (
    AlreadyExists,
    Driver,
    DriverContext,
    DriverError,
    DriverUnavailable,
    IncomingPlan,
    InsufficientCapacity,
    InvalidSpec,
    MoveFigures,
    OutgoingMove,
    StartFailed,
    UnknownWorkload,
    Usage,
    WorkloadInfo,
    WorkloadSpec,
)
from agents.drivers.qemu_args import (
    MIB,
    QMP_SOCKET_NAME,
    MigrationProgress,
    MigrationStats,
    QemuConfig,
    build_command,
    config_from_spec,
    incoming_uri,
    parse_migration_uri,
    parse_version,
    progress_from_query_migrate,
    stats_from_query_migrate,
)
from agents.drivers.qemu_vm import (
    META_FILE,
    PID_FILE,
    ROLE_HOSTED,
    ROLE_INCOMING,
    QmpSession,
    VmHandle,
    find_process,
    read_meta,
    runstate_to_state,
    write_random_file,
)

__all__ = [
    "MigrationCancelled",
    "MigrationError",
    "MigrationProgress",
    "MigrationStats",
    "ProgressCallback",
    "QemuDriver",
    "QemuError",
    "WorkloadStateError",
]

log = logging.getLogger(__name__)

# QEMU's default (128 MiB/s) would make loopback and LAN migrations needlessly slow.
DEFAULT_MAX_BANDWIDTH_BYTES_PER_SECOND = 4 * 1024 * MIB
DEFAULT_MAX_DOWNTIME_SECONDS = 0.3  # QEMU's own default downtime-limit
USAGE_MIN_WINDOW_SECONDS = 0.5  # closer readings reuse the last rates (two readers, no noise)
_ACTIVE_MIGRATION = frozenset(
    {"setup", "active", "pre-switchover", "device", "cancelling", "wait-unplug"}
    | {"postcopy-active", "postcopy-paused", "postcopy-recover", "colo"}
)

ProgressCallback = Callable[[MigrationProgress], Awaitable[None] | None]


class QemuError(DriverError):
    """QEMU did not answer QMP or refused a command."""

    code = "internal"


class WorkloadStateError(DriverError):
    """The VM is not in a state that allows the operation (e.g. migrating a paused VM)."""

    code = "failed_precondition"


class MigrationError(DriverError):
    """A live migration failed, timed out or could not be verified."""

    code = "aborted"


class MigrationCancelled(MigrationError):
    """The migration was cancelled (``cancel_out``) before it completed."""


async def _notify(callback: ProgressCallback | None, progress: MigrationProgress) -> None:
    if callback is None:
        return
    result = callback(progress)
    if inspect.isawaitable(result):
        await result


class QemuDriver(Driver):
    """Real QEMU VMs (TCG by default) under ``<state_dir>/qemu``; see the module docstring.

    Raises :class:`DriverUnavailable` when the QEMU binary is not installed.
    """

    name = "qemu"
    kind = "vm"
    migration_method = "live"

    def __init__(
        self,
        ctx: DriverContext,
        *,
        binary: str = "qemu-system-x86_64",
        qmp_timeout_seconds: float = 10.0,
        start_timeout_seconds: float = 30.0,
        stop_timeout_seconds: float = 5.0,
    ) -> None:
        super().__init__(ctx)
        path = shutil.which(binary)
        if path is None:
            raise DriverUnavailable(
                f"{binary} not found on PATH: install QEMU (Debian: apt-get install qemu-system-x86)"
            )
        self._binary = path
        self._root = ctx.state_dir / "qemu"
        self._qmp_timeout = qmp_timeout_seconds
        self._start_timeout = start_timeout_seconds
        self._stop_timeout = stop_timeout_seconds
        self._vms: dict[str, VmHandle] = {}
        self._version: str | None = None

    @classmethod
    def create(cls, ctx: DriverContext) -> QemuDriver:
        """The node's way to build the driver (raises :class:`DriverUnavailable` without QEMU)."""
        return cls(ctx)

    @property
    def root(self) -> Path:
        """The directory holding one sub-directory per VM."""
        return self._root

    # ---- Driver interface ------------------------------------------------------------------

    def version(self) -> str:
        if self._version is None:
            try:
                out = subprocess.run(
                    [self._binary, "--version"], capture_output=True, text=True, timeout=30, check=True
                )
                self._version = parse_version(out.stdout)
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                raise DriverUnavailable(f"cannot read the version of {self._binary}: {exc}") from exc
        return self._version

    async def start(self, spec: WorkloadSpec) -> WorkloadInfo:
        """Boot a VM (no disk; no network unless ``params['network']='user'``) and wait for QMP."""
        config = config_from_spec(spec)
        self._claim(spec.workload_id, config)
        return self._info(await self._spawn(spec, config, role=ROLE_HOSTED))

    async def stop(self, workload_id: str) -> None:
        """QMP ``quit``, then SIGTERM, then SIGKILL; removes the VM's directory."""
        await self._discard(self._get(workload_id))

    def list(self) -> list[WorkloadInfo]:
        """The VMs this node hosts (incoming migration targets are in :meth:`list_incoming`)."""
        return [self._info(vm) for vm in self._vms.values() if vm.role == ROLE_HOSTED]

    def list_incoming(self) -> builtins.list[WorkloadInfo]:
        """Migration targets prepared here and not yet finished or aborted."""
        return [self._info(vm) for vm in self._vms.values() if vm.role == ROLE_INCOMING]

    def usage(self, workload_id: str, now: float) -> Usage:
        """CPU (cores, from the delta of the QEMU process's CPU times), RSS and block I/O rate.

        The first reading of a VM averages over the process's lifetime; readings closer than
        ``USAGE_MIN_WINDOW_SECONDS`` to the previous one return its rates.
        """
        vm = self._get(workload_id)
        if vm.proc is None or not vm.alive():
            if vm.state != "starting":
                vm.state = "failed"
            return Usage(workload_id, now, 0.0, 0, 0.0)
        try:
            with vm.proc.oneshot():
                times = vm.proc.cpu_times()
                rss = vm.proc.memory_info().rss
                try:
                    counters = vm.proc.io_counters()
                    io_total = counters.read_bytes + counters.write_bytes
                except (psutil.AccessDenied, AttributeError):
                    io_total = 0
        except psutil.Error:
            vm.state = "failed"
            return Usage(workload_id, now, 0.0, 0, 0.0)
        cpu = times.user + times.system
        since, cpu0, io0 = vm.last if vm.last is not None else (vm.create_time or vm.started_at, 0.0, 0)
        elapsed = now - since
        if elapsed >= USAGE_MIN_WINDOW_SECONDS or (vm.last is None and elapsed > 0):
            vm.last_rates = (max(0.0, (cpu - cpu0) / elapsed), max(0.0, (io_total - io0) / elapsed))
            vm.last = (now, cpu, io_total)
        cores, io_rate = vm.last_rates
        return Usage(workload_id, now, cores, rss, io_rate)

    async def close(self) -> None:
        """Drop the QMP sessions; the VMs keep running (``recover`` finds them again)."""
        for vm in self._vms.values():
            await vm.qmp.close()
            vm.detach()

    # ---- QMP state ---------------------------------------------------------------------------

    async def query_status(self, workload_id: str) -> str:
        """QEMU's own run state over QMP (``running``, ``inmigrate``, ``postmigrate``…).

        Also refreshes the state :meth:`list` reports.
        """
        vm = self._get(workload_id)
        status = await self._runstate(vm)
        if not vm.migrating:
            vm.state = runstate_to_state(status)
        return status

    def role(self, workload_id: str) -> str:
        """``hosted``, or ``incoming`` for a migration target not yet finished."""
        return self._get(workload_id).role

    # ---- live migration ------------------------------------------------------------------

    async def prepare_incoming(
        self, spec: WorkloadSpec, *, listen_host: str = "127.0.0.1", advertise_host: str | None = None
    ) -> str:
        """Start a target QEMU for ``spec`` waiting for a migration; return the URI to migrate to.

        The target listens on a port QEMU picks (``migrate-incoming tcp:HOST:0``), so two
        targets never race for a port. ``advertise_host`` replaces ``listen_host`` in the URI
        when the source must reach another address (e.g. listening on 0.0.0.0).
        """
        config = config_from_spec(spec)
        for host in (listen_host, advertise_host):
            if host is not None:
                try:
                    parse_migration_uri(f"tcp:{host}:1")
                except ValueError as exc:
                    raise InvalidSpec(f"{host!r} is not a host name or address") from exc
        self._claim(spec.workload_id, config)
        vm = await self._spawn(spec, config, role=ROLE_INCOMING)
        try:
            await self._qmp(vm, "migrate-incoming", {"uri": f"tcp:{listen_host}:0"})
            vm.incoming_uri = incoming_uri(await self._qmp(vm, "query-migrate"), advertise_host)
        except BaseException:
            await self._discard(vm)
            raise
        vm.state = "migrating"
        vm.write_meta()
        return vm.incoming_uri

    async def migrate_out(
        self,
        workload_id: str,
        uri: str,
        *,
        progress: ProgressCallback | None = None,
        max_downtime_seconds: float = DEFAULT_MAX_DOWNTIME_SECONDS,
        max_bandwidth_bytes_per_second: int = DEFAULT_MAX_BANDWIDTH_BYTES_PER_SECOND,
        timeout_seconds: float = 600.0,
        poll_interval_seconds: float = 0.05,
    ) -> MigrationStats:
        """Live-migrate (pre-copy) a running VM to ``uri`` from :meth:`prepare_incoming`.

        ``progress`` (sync or async) receives a :class:`MigrationProgress` per poll and one
        after completion; an exception it raises cancels the migration. Returns QEMU's own
        statistics (downtime, total and setup time, bytes). On success the source is left in
        runstate ``postmigrate`` (state ``stopped``) until :meth:`remove_after_migration`. On
        failure, timeout or cancellation of the awaiting task, an unfinished migration is
        cancelled and the source keeps running; raises :class:`MigrationError`
        (:class:`MigrationCancelled` after :meth:`cancel_out`). If it raises after QEMU
        completed the move, :meth:`query_status` says ``postmigrate``.
        """
        vm = self._get(workload_id, ROLE_HOSTED)
        try:
            parse_migration_uri(uri)
        except ValueError as exc:
            raise InvalidSpec(str(exc)) from exc
        if not 0 < max_downtime_seconds <= 2000:
            raise InvalidSpec(f"max downtime must be in (0, 2000] seconds, not {max_downtime_seconds}")
        if max_bandwidth_bytes_per_second <= 0:
            raise InvalidSpec(f"max bandwidth must be positive, not {max_bandwidth_bytes_per_second}")
        if vm.migrating:
            raise WorkloadStateError(f"VM {workload_id} is already migrating")
        status = await self._runstate(vm)
        if status != "running":
            raise WorkloadStateError(f"VM {workload_id} is {status}: only a running VM is migrated")
        vm.migrating, vm.state = True, "migrating"
        params = {
            "downtime-limit": max(1, round(max_downtime_seconds * 1000)),
            "max-bandwidth": int(max_bandwidth_bytes_per_second),
        }
        try:
            stats = await self._migrate(vm, uri, progress, params, timeout_seconds, poll_interval_seconds)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel_quietly(vm))
            raise
        except BaseException:
            await self._cancel_quietly(vm)
            raise
        finally:
            vm.migrating = False
        vm.state = "stopped"
        vm.extra["migrated_to"] = uri
        vm.write_meta()
        return stats

    async def _migrate(
        self,
        vm: VmHandle,
        uri: str,
        progress: ProgressCallback | None,
        params: dict[str, int],
        timeout: float,
        poll: float,
    ) -> MigrationStats:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wid = vm.workload_id
        await self._qmp(vm, "migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
        await self._qmp(vm, "migrate-set-parameters", dict(params))
        client = await vm.qmp.client()
        with client.listener("MIGRATION") as events:
            await self._qmp(vm, "migrate", {"uri": uri})
            while True:
                reply = await self._qmp(vm, "query-migrate")
                status = str(reply.get("status", "none"))
                if status == "completed":
                    break
                if status == "failed":
                    reason = reply.get("error-desc", "QEMU gave no reason")
                    raise MigrationError(f"migration of {wid} to {uri} failed: {reason}")
                if status == "cancelled":
                    raise MigrationCancelled(f"migration of {wid} to {uri} was cancelled")
                await _notify(progress, progress_from_query_migrate(reply, time.time()))
                if loop.time() > deadline:
                    raise MigrationError(f"migration of {wid} did not converge in {timeout} s")
                try:
                    await asyncio.wait_for(events.get(), poll)  # wakes early on a status change
                except TimeoutError:
                    pass
        # QEMU shows 'completed' a moment before it computes downtime and total time; they are
        # final once the source has entered 'postmigrate'.
        await self._await_runstate(vm, {"postmigrate"}, max(10.0, deadline - loop.time()))
        reply = await self._qmp(vm, "query-migrate")
        await _notify(progress, progress_from_query_migrate(reply, time.time()))
        return stats_from_query_migrate(reply)

    async def cancel_out(self, workload_id: str, *, timeout_seconds: float = 30.0) -> None:
        """Cancel an outgoing migration (``migrate_cancel``); the source VM keeps running.

        Raises :class:`MigrationError` if the migration already completed: then the target
        holds the VM (``abort_incoming`` on the target and :meth:`rollback_out` undo it).
        """
        vm = self._get(workload_id, ROLE_HOSTED)
        status = str((await self._qmp(vm, "query-migrate")).get("status", "none"))
        if status == "completed":
            raise MigrationError(f"migration of {workload_id} already completed; use rollback_out to undo it")
        if status in _ACTIVE_MIGRATION:
            await self._qmp(vm, "migrate_cancel")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while status in _ACTIVE_MIGRATION:
            if loop.time() > deadline:
                raise MigrationError(f"migration of {workload_id} is still {status} after cancelling")
            await asyncio.sleep(0.02)
            status = str((await self._qmp(vm, "query-migrate")).get("status", "none"))
        if status == "completed":
            raise MigrationError(f"migration of {workload_id} completed before the cancel took effect")
        await self._await_runstate(vm, {"running"}, deadline - loop.time())
        if not vm.migrating:
            vm.state = "running"

    async def rollback_out(self, workload_id: str, *, timeout_seconds: float = 30.0) -> None:
        """Resume a source whose migration completed (``postmigrate`` → ``cont`` → running).

        Call it only once the target is aborted, or two instances would run.
        """
        vm = self._get(workload_id, ROLE_HOSTED)
        status = await self._runstate(vm)
        if status == "running":
            return
        if status != "postmigrate":
            raise WorkloadStateError(f"VM {workload_id} is {status}, not postmigrate: nothing to roll back")
        await self._qmp(vm, "cont")
        await self._await_runstate(vm, {"running"}, timeout_seconds)
        vm.state = "running"
        vm.extra.pop("migrated_to", None)
        vm.write_meta()

    async def finish_incoming(self, workload_id: str, *, timeout_seconds: float = 30.0) -> WorkloadInfo:
        """Verify over QMP that the migrated VM runs on this target and adopt it as hosted.

        Raises :class:`MigrationError` if it does not reach ``running`` in time; the incoming
        VM is then left for :meth:`abort_incoming`.
        """
        vm = self._get(workload_id, ROLE_INCOMING)
        try:
            await self._await_runstate(vm, {"running"}, timeout_seconds)
        except QemuError as exc:
            raise MigrationError(f"the target of {workload_id} is not running: {exc}") from exc
        vm.role, vm.state, vm.incoming_uri, vm.last = ROLE_HOSTED, "running", "", None
        vm.write_meta()
        return self._info(vm)

    async def abort_incoming(self, workload_id: str) -> None:
        """Kill a migration target and remove its files (also when QEMU already ended it, as it
        does when the source cancels)."""
        await self._discard(self._get(workload_id, ROLE_INCOMING))

    async def remove_after_migration(self, workload_id: str) -> None:
        """Quit the source of a completed migration (runstate ``postmigrate``) and remove it.

        Refuses (:class:`WorkloadStateError`) while the source runs: that would lose the VM.
        """
        vm = self._get(workload_id, ROLE_HOSTED)
        if vm.alive():
            status = await self._runstate(vm)
            if status != "postmigrate":
                raise WorkloadStateError(f"VM {workload_id} is {status}, not postmigrate: it was not migrated out")
        await self._discard(vm)

    # ---- the executor's migration hooks (see agents.drivers.base.Driver) ----------------------

    async def migrate_in_prepare(self, spec: WorkloadSpec, staging: Path) -> IncomingPlan:
        """Start the target QEMU waiting for the source's stream (``-incoming``)."""
        vm = self._vms.get(spec.workload_id)
        if vm is not None and vm.role == ROLE_INCOMING and vm.incoming_uri and vm.alive():
            return IncomingPlan(incoming_uri=vm.incoming_uri)  # prepared already (a repeated call)
        uri = await self.prepare_incoming(spec, listen_host=self.ctx.bind_host)
        return IncomingPlan(incoming_uri=uri)

    async def migrate_out_transfer(self, workload_id: str, move: OutgoingMove) -> MoveFigures:
        """The whole pre-copy live migration, switch-over included; QEMU's own statistics."""
        first = True

        async def report(p: MigrationProgress) -> None:
            nonlocal first
            await move.progress(p.done_ratio, p.transferred_bytes, f"pre-copy iteration {p.iteration}")
            if first and p.status in ("active", "device", "pre-switchover"):
                first = False
                move.checkpoint("transfer")

        stats = await self.migrate_out(
            workload_id,
            move.incoming.incoming_uri,
            progress=report,
            timeout_seconds=max(1.0, move.deadline_at - time.time()),
            # Wake on QEMU's MIGRATION events; polls are rare because each takes the lock the
            # migration needs (the raw bound does not poll at all).
            poll_interval_seconds=0.25,
        )
        return MoveFigures(
            transferred_bytes=stats.transferred_bytes,
            downtime_seconds=stats.downtime_seconds,
            message=(
                f"QEMU: downtime {stats.downtime_ms:.0f} ms, total {stats.total_ms:.0f} ms, "
                f"{stats.iterations} iterations"
            ),
        )

    async def migrate_in_switch(self, spec: WorkloadSpec, staging: Path) -> WorkloadInfo:
        """Verify over QMP that the VM runs here and adopt it as hosted."""
        vm = self._get(spec.workload_id)
        if vm.role == ROLE_HOSTED:
            if await self.query_status(spec.workload_id) != "running":
                raise MigrationError(f"VM {spec.workload_id} is here but not running")
            return self._info(vm)
        return await self.finish_incoming(spec.workload_id)

    async def migrate_in_abort(self, workload_id: str, staging: Path) -> None:
        vm = self._vms.get(workload_id)
        if vm is None:
            return
        if vm.role == ROLE_INCOMING:
            await self.abort_incoming(workload_id)
        else:
            await self.stop(workload_id)

    async def migrate_out_remove(self, workload_id: str) -> None:
        await self.remove_after_migration(workload_id)

    async def migrate_out_handed_over(self, workload_id: str) -> bool:
        """Whether the VM may run on the target now (the migration completed: the source is
        ``postmigrate``). A transfer still under way (a restarted node finds QEMU migrating on
        its own) is cancelled first."""
        vm = self._get(workload_id, ROLE_HOSTED)
        if not vm.alive():
            return True  # the source QEMU is gone: only the target can hold the VM
        status = str((await self._qmp(vm, "query-migrate")).get("status", "none"))
        if status in _ACTIVE_MIGRATION:
            try:
                await self.cancel_out(workload_id)
            except MigrationError as exc:
                log.warning("cancelling the migration of %s: %s", workload_id, exc)
        return await self._runstate(vm) == "postmigrate"

    async def migrate_out_rollback(self, workload_id: str, spec: WorkloadSpec) -> None:
        """Run here again: cancel a migration under way or resume a migrated (postmigrate) source."""
        vm = self._get(workload_id, ROLE_HOSTED)
        if not vm.alive():
            raise MigrationError(f"the source QEMU of {workload_id} is gone: the VM cannot resume here")
        status = await self._runstate(vm)
        if status == "postmigrate":
            await self.rollback_out(workload_id)
        elif status != "running":
            migration = str((await self._qmp(vm, "query-migrate")).get("status", "none"))
            if migration in _ACTIVE_MIGRATION:
                await self.cancel_out(workload_id)
        vm.state = runstate_to_state(await self._runstate(vm))

    # ---- recovery ------------------------------------------------------------------------

    async def recover(self) -> builtins.list[WorkloadInfo]:
        """Adopt the VMs of this state directory again (after a node restart or crash).

        Every ``<state-dir>/qemu/<id>/vm.json`` is matched to its live QEMU through the pid
        file, the process start time, the working directory and ``-name``. A VM whose process
        is gone comes back with state ``failed`` (``stop`` or ``abort_incoming`` removes it).
        Hosted VMs and incoming targets are both returned (:meth:`role` tells them apart); the
        QMP run state tells the journal how far a migration got: ``inmigrate`` or ``running``
        on a target, ``running`` or ``postmigrate`` on a source.
        """
        found: builtins.list[WorkloadInfo] = []
        if not self._root.is_dir():
            return found
        for meta_path in sorted(self._root.glob(f"*/{META_FILE}")):
            wid = meta_path.parent.name
            if wid not in self._vms:
                vm = self._load(meta_path.parent)
                if vm is None:
                    continue
                self._vms[wid] = vm
                if vm.proc is not None:
                    try:
                        vm.state = runstate_to_state(await self._runstate(vm))
                    except QemuError as exc:
                        log.warning("recovered VM %s does not answer QMP: %s", wid, exc)
                        vm.state = "failed"
            found.append(self._info(self._vms[wid]))
        return found

    def _load(self, vm_dir: Path) -> VmHandle | None:
        meta = read_meta(vm_dir)
        try:
            spec = WorkloadSpec.from_dict(meta["spec"])
            config = config_from_spec(spec)
        except (ValueError, KeyError, TypeError, DriverError) as exc:
            log.warning("ignoring unreadable VM record in %s: %s", vm_dir, exc)
            return None
        vm = VmHandle(
            spec=spec,
            config=config,
            dir=vm_dir,
            role=str(meta.get("role", ROLE_HOSTED)),
            state="failed",
            started_at=float(meta.get("started_at") or 0.0),
            qmp=QmpSession(vm_dir, f"qemu:{spec.workload_id}", self._qmp_timeout),
            incoming_uri=str(meta.get("incoming_uri", "")),
            extra=dict(meta.get("extra") or {}),
        )
        vm.proc = find_process(vm_dir, spec.workload_id, meta)
        if vm.proc is not None:
            vm.pid, vm.create_time, vm.state = vm.proc.pid, vm.proc.create_time(), "starting"
        return vm

    # ---- internals -----------------------------------------------------------------------

    def _get(self, workload_id: str, role: str | None = None) -> VmHandle:
        vm = self._vms.get(workload_id)
        if vm is None:
            raise UnknownWorkload(f"no qemu workload {workload_id!r} on this node")
        if role is not None and vm.role != role:
            what = "an incoming migration target" if vm.role == ROLE_INCOMING else "a hosted VM"
            raise WorkloadStateError(f"VM {workload_id} is {what} here, not {role}")
        return vm

    def _claim(self, workload_id: str, config: QemuConfig) -> None:
        if workload_id in self._vms:
            vm = self._vms[workload_id]
            raise AlreadyExists(f"qemu workload {workload_id!r} already exists here ({vm.role}, {vm.state})")
        vm_dir = self._root / workload_id
        if vm_dir.exists():
            if find_process(vm_dir, workload_id, read_meta(vm_dir)) is not None:
                raise AlreadyExists(f"a QEMU for {workload_id!r} still runs in {vm_dir}: call recover() first")
            shutil.rmtree(vm_dir, ignore_errors=True)  # leftovers of a VM that is gone
        available = psutil.virtual_memory().available
        if config.memory_bytes > available:
            raise InsufficientCapacity(
                f"VM {workload_id} needs {config.memory_mib} MiB, the host has {available // MIB} MiB available"
            )

    async def _spawn(self, spec: WorkloadSpec, config: QemuConfig, *, role: str) -> VmHandle:
        vm_dir = self._root / spec.workload_id
        vm = VmHandle(
            spec=spec,
            config=config,
            dir=vm_dir,
            role=role,
            state="starting",
            started_at=time.time(),
            qmp=QmpSession(vm_dir, f"qemu:{spec.workload_id}", self._qmp_timeout),
        )
        self._vms[spec.workload_id] = vm  # holds the id while we await
        try:
            vm_dir.mkdir(parents=True, exist_ok=True)
            vm.write_meta()
            incoming = role == ROLE_INCOMING
            fill = None
            if config.ram_fill == "random" and not incoming:
                fill = await self._fill_file(config.memory_bytes)
            argv = build_command(self._binary, config, pidfile=vm_dir / PID_FILE, incoming=incoming, fill_file=fill)
            log.info("starting VM %s: %s", spec.workload_id, " ".join(argv))
            vm.spawn(argv)
            vm.write_meta()
            await self._await_qmp(vm)
            status = await self._runstate(vm)
        except BaseException:
            await self._discard(vm)
            raise
        vm.state = runstate_to_state(status)
        return vm

    async def _await_qmp(self, vm: VmHandle) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        while True:
            if not vm.alive():
                raise StartFailed(f"QEMU for {vm.workload_id} exited during start: {vm.log_tail()}")
            if (vm.dir / QMP_SOCKET_NAME).exists():
                try:
                    await vm.qmp.client()
                    return
                except (TimeoutError, OSError, QMPError) as exc:
                    if loop.time() > deadline:
                        raise StartFailed(f"QEMU for {vm.workload_id} does not answer QMP: {exc!r}") from exc
            if loop.time() > deadline:
                raise StartFailed(f"QEMU for {vm.workload_id} opened no QMP socket in {self._start_timeout} s")
            await asyncio.sleep(0.02)

    async def _qmp(self, vm: VmHandle, cmd: str, args: dict[str, Any] | None = None) -> Any:
        try:
            return await vm.qmp.execute(cmd, args)
        except ExecuteError as exc:
            raise QemuError(f"QMP {cmd} on {vm.workload_id}: {exc.error_class}: {exc}") from exc
        except (TimeoutError, QMPError, OSError, EOFError) as exc:
            raise QemuError(f"QMP {cmd} on {vm.workload_id} failed: {exc!r}") from exc

    async def _runstate(self, vm: VmHandle) -> str:
        return str((await self._qmp(vm, "query-status"))["status"])

    async def _await_runstate(self, vm: VmHandle, wanted: Collection[str], timeout: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            if not vm.alive():
                raise QemuError(f"QEMU for {vm.workload_id} has exited: {vm.log_tail()}")
            status = await self._runstate(vm)
            if status in wanted:
                return status
            if loop.time() > deadline:
                raise QemuError(f"VM {vm.workload_id} is {status}, not {' or '.join(sorted(wanted))}")
            await asyncio.sleep(0.01)

    async def _cancel_quietly(self, vm: VmHandle) -> None:
        try:
            status = str((await self._qmp(vm, "query-migrate")).get("status", "none"))
            if status in _ACTIVE_MIGRATION:
                await self._qmp(vm, "migrate_cancel")
                await self._await_runstate(vm, {"running"}, 10.0)
            vm.state = runstate_to_state(await self._runstate(vm))
        except DriverError as exc:
            log.warning("could not cancel the migration of %s: %s", vm.workload_id, exc)
            vm.state = "running" if vm.alive() else "failed"

    async def _discard(self, vm: VmHandle) -> None:
        if not await vm.terminate(self._stop_timeout):
            raise QemuError(f"QEMU for {vm.workload_id} (pid {vm.pid}) survives SIGKILL")
        if self._vms.get(vm.workload_id) is vm:
            del self._vms[vm.workload_id]
        shutil.rmtree(vm.dir, ignore_errors=True)

    def _info(self, vm: VmHandle) -> WorkloadInfo:
        if vm.state not in ("failed", "starting") and not vm.alive():
            vm.state = "failed"
        return WorkloadInfo(
            spec=vm.spec,
            state="migrating" if vm.migrating else vm.state,
            started_at=vm.started_at,
            endpoint=str(vm.dir / QMP_SOCKET_NAME),
            pid=vm.pid,
        )

    async def _fill_file(self, size: int) -> Path:
        """A file of random bytes mapped (privately) as the RAM of ``ram_fill=random`` VMs."""
        path = self._root / ".fill" / f"random-{size // MIB}M.bin"
        if not (path.is_file() and path.stat().st_size == size):
            await asyncio.to_thread(write_random_file, path, size)
        return path
