"""The ``process`` driver: stateful OS processes, the stand-in for containers.

A workload is one command line run in its own session (process group), with its files under
``<node-state-dir>/workloads/<id>/``: ``state/`` (the workload's state, passed as
``PLBA_STATE_DIR``; a migration carries this directory), ``output.log`` (stdout and stderr) and
``workload.json`` (the record a restarted node adopts the process from). Usage is measured with
psutil over the process and all its descendants. Stop sends SIGTERM to the process group,
SIGKILL after ``stop_timeout_seconds``, and removes the workload's files.

Params:

=====================  =====================================================================
command                the command line (shell-style quoting, no shell); default
                       ``<python> -m agents.drivers.counter_app``
port                   ``auto`` (default: a free port), ``none`` or a number; passed as
                       ``PLBA_PORT`` and reported as the endpoint ``host:port``
wait_port              wait until the port accepts connections before reporting the
                       workload running (default: yes for the default command, else no)
start_timeout_seconds  how long to wait for the port (default 15)
stop_timeout_seconds   grace between SIGTERM and SIGKILL (default 10)
standby                start a migration's target early and let it wait for its state (see
                       below; default yes for the counter app, no for other commands)
env.NAME               an extra environment variable NAME for the process
=====================  =====================================================================

The process also gets ``PLBA_WORKLOAD_ID`` and ``PLBA_NODE_ID``.

Migration (method ``snapshot``, no CRIU): the executor streams the ``state/`` directory to the
target in checksummed chunks while the process still runs (pre-copy), then quiesces it —
SIGTERM, so the process flushes its state and exits (SIGKILL after ``stop_timeout_seconds``) —
sends only the files that changed since, and the target restores the directory and starts the
process on it. The downtime runs from the SIGTERM to the target's port accepting connections.

Standby (param ``standby``, default yes for the counter app): the target starts the process
when the move is prepared, with ``PLBA_GO_FD`` and ``PLBA_READY_FD`` naming two pipes; a
standby-aware program finishes its start-up (interpreter, imports), writes one byte to the ready
pipe and then blocks reading one byte from the go pipe before it touches ``PLBA_STATE_DIR``. The
source quiesces only once the pre-copy arrived and the standby said it is ready. At the switch
the state is renamed into place and the go byte written, so the downtime does not include a
cold start. EOF on the go pipe (the move aborted, or the node died) means: exit without
touching the state.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import agents
from agents.drivers import params as P
from agents.drivers.base import (
    AlreadyExists,
    Driver,
    DriverContext,
    IncomingPlan,
    InvalidSpec,
    MigrationUnsupported,
    MoveFigures,
    OutgoingMove,
    StartFailed,
    UnknownWorkload,
    Usage,
    WorkloadInfo,
    WorkloadSpec,
)
from agents.drivers.psmeter import ProcessGone, ProcessTreeMeter
from agents.drivers.records import read_records, remove_workload_dir, write_record

log = logging.getLogger(__name__)

KNOWN_PARAMS = frozenset({"command", "port", "wait_port", "start_timeout_seconds", "stop_timeout_seconds", "standby"})
STATE_SUBDIR = "state"
INCOMING_SUBDIR = "state.incoming"  # where a migration's snapshot lands on the target
COUNTER_APP = "agents.drivers.counter_app"
LOG_FILE = "output.log"
PROJECT_ROOT = Path(agents.__file__).resolve().parent.parent
# Exit within this time means the command could not start at all (a bad flag, a missing file).
_EARLY_EXIT_SECONDS = 0.2


def with_project_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this project first on PYTHONPATH: ``python -m agents…`` must find *our*
    ``agents`` package (another popular package has that name) wherever the node runs."""
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    return env


def default_command() -> list[str]:
    return [sys.executable, "-m", COUNTER_APP]


def _is_counter_app(argv: list[str]) -> bool:
    """Our own counter app (with or without options): it gets the project path and standby."""
    return len(argv) >= 3 and argv[1] == "-m" and argv[2] == COUNTER_APP


@dataclass(frozen=True, slots=True)
class ProcessConfig:
    argv: list[str]
    is_default: bool
    port: int | None  # 0: pick one
    wait_port: bool
    start_timeout_seconds: float
    stop_timeout_seconds: float
    env: dict[str, str]
    standby: bool = False


def config_from_spec(spec: WorkloadSpec) -> ProcessConfig:
    """Check the params of a process spec (no side effects)."""
    unknown = sorted(k for k in spec.params if k not in KNOWN_PARAMS and not k.startswith("env."))
    if unknown:
        raise InvalidSpec(
            f"unknown param {unknown[0]!r} for driver process; known: {', '.join(sorted(KNOWN_PARAMS))}, env.NAME"
        )
    command = P.text(spec, "command")
    if command:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise InvalidSpec(f"param command: cannot split {command!r}: {exc}") from exc
        if not argv:
            raise InvalidSpec("param command: empty command line")
    else:
        argv = default_command()
    env = {k.removeprefix("env."): v for k, v in spec.params.items() if k.startswith("env.")}
    for name in env:
        if not name or name.startswith("PLBA_") or "=" in name:
            raise InvalidSpec(f"param env.{name}: not a settable variable name (PLBA_* are set by the driver)")
    port = P.port(spec)
    ours = not command or _is_counter_app(argv)
    return ProcessConfig(
        argv=argv,
        is_default=ours,
        port=port,
        wait_port=P.flag(spec, "wait_port", ours and port is not None),
        start_timeout_seconds=P.number(spec, "start_timeout_seconds", 15.0, positive=True, maximum=600),
        stop_timeout_seconds=P.number(spec, "stop_timeout_seconds", 10.0, minimum=0.0, maximum=600),
        env=env,
        standby=P.flag(spec, "standby", ours),
    )


@dataclass(slots=True)
class _Proc:
    spec: WorkloadSpec
    config: ProcessConfig
    directory: Path
    started_at: float
    pid: int
    port: int | None
    state: str
    popen: subprocess.Popen[bytes] | None = None
    meter: ProcessTreeMeter | None = None
    exit_code: int | None = None
    go_fd: int | None = None  # write end of a standby process's go pipe
    ready_fd: int | None = None  # read end of its "standing by" pipe


class ProcessDriver(Driver):
    """Stateful OS processes in their own session; see the module docstring."""

    name = "process"
    kind = "container"
    migration_method = "snapshot"

    def __init__(self, ctx: DriverContext, clock: Callable[[], float] = time.time) -> None:
        super().__init__(ctx)
        self._clock = clock
        self._procs: dict[str, _Proc] = {}
        self._starting: set[str] = set()
        self._incoming: dict[str, _Proc] = {}  # standby processes of migrations not switched yet

    def version(self) -> str:
        return f"{platform.system().lower()}-{platform.release()}"[:64]

    def state_dir(self, workload_id: str) -> Path:
        """The directory a workload keeps its state in (``PLBA_STATE_DIR``)."""
        return self.ctx.workload_dir(workload_id) / STATE_SUBDIR

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, spec: WorkloadSpec) -> WorkloadInfo:
        wid = spec.workload_id
        config = config_from_spec(spec)
        if wid in self._procs or wid in self._starting:
            raise AlreadyExists(f"workload {wid!r} already runs on this node")
        self._starting.add(wid)
        try:
            proc = await self._spawn(spec, config)
            self._procs[wid] = proc
        finally:
            self._starting.discard(wid)
        try:
            await self._await_ready(proc)
        except BaseException:
            await self._terminate(proc)
            self._procs.pop(wid, None)
            remove_workload_dir(proc.directory)
            raise
        proc.state = "running"
        return self._info(proc)

    async def _spawn(
        self, spec: WorkloadSpec, config: ProcessConfig, *, standby: bool = False, port: int | None = None
    ) -> _Proc:
        directory = self.ctx.workload_dir(spec.workload_id)
        state = directory / STATE_SUBDIR
        directory.mkdir(parents=True, exist_ok=True)
        if not standby:
            state.mkdir(parents=True, exist_ok=True)
        if port is None:
            port = _free_port(self.ctx.bind_host) if config.port == 0 else config.port
        go_read = go_write = ready_read = ready_write = None
        if standby:
            go_read, go_write = os.pipe()
            ready_read, ready_write = os.pipe()
            os.set_inheritable(go_read, True)
            os.set_inheritable(ready_write, True)
        env = dict(os.environ)  # the child inherits the node's environment, plus its own
        env.update(config.env)
        env.update(
            PLBA_STATE_DIR=str(state),
            PLBA_WORKLOAD_ID=spec.workload_id,
            PLBA_NODE_ID=self.ctx.node_id,
            PLBA_PORT=str(port or ""),
        )
        if go_read is not None:
            env["PLBA_GO_FD"] = str(go_read)
            env["PLBA_READY_FD"] = str(ready_write)
        if config.is_default:
            with_project_path(env)
        log_path = directory / LOG_FILE
        try:
            with open(log_path, "ab") as out:
                popen = subprocess.Popen(
                    config.argv,
                    cwd=directory,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stopped as a whole, survives the node
                    pass_fds=(go_read, ready_write) if go_read is not None and ready_write is not None else (),
                )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            for fd in (go_read, go_write, ready_read, ready_write):
                if fd is not None:
                    os.close(fd)
            remove_workload_dir(directory)
            raise InvalidSpec(f"param command: cannot run {config.argv[0]!r}: {exc.strerror or exc}") from exc
        for fd in (go_read, ready_write):
            if fd is not None:
                os.close(fd)
        proc = _Proc(spec, config, directory, self._clock(), popen.pid, port, "starting", popen, go_fd=go_write)
        proc.ready_fd = ready_read
        try:
            proc.meter = ProcessTreeMeter(popen.pid)
        except ProcessGone:
            proc.meter = None
        write_record(directory, self._record(proc, incoming=standby))
        return proc

    async def _await_ready(self, proc: _Proc) -> None:
        deadline = time.monotonic() + (proc.config.start_timeout_seconds if proc.config.wait_port else 0.0)
        early = time.monotonic() + _EARLY_EXIT_SECONDS
        while True:
            if not self._alive(proc):
                raise StartFailed(
                    f"workload {proc.spec.workload_id!r} exited during start with code {proc.exit_code}: "
                    f"{_tail(proc.directory / LOG_FILE)}"
                )
            now = time.monotonic()
            if proc.config.wait_port and proc.port:
                if await _port_open(self.ctx.bind_host, proc.port):
                    return
                if now > deadline:
                    raise StartFailed(
                        f"workload {proc.spec.workload_id!r} did not open port {proc.port} within "
                        f"{proc.config.start_timeout_seconds:g} s: {_tail(proc.directory / LOG_FILE)}"
                    )
            elif now > early:
                return
            # Poll fast at first: after a migration's switch this wait is part of the downtime.
            await asyncio.sleep(0.005 if now < early else 0.05)

    async def stop(self, workload_id: str) -> None:
        proc = self._procs.get(workload_id)
        if proc is None:
            raise UnknownWorkload(f"no process workload {workload_id!r} on this node")
        proc.state = "stopped"
        await self._terminate(proc)
        self._procs.pop(workload_id, None)
        await asyncio.to_thread(remove_workload_dir, proc.directory)

    async def _terminate(self, proc: _Proc) -> None:
        """SIGTERM to the process group, SIGKILL after the grace; reaps our own child."""
        await asyncio.to_thread(_terminate_tree, proc.pid, proc.meter, proc.config.stop_timeout_seconds)
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.popen.wait, 5.0)

    # ---- views -----------------------------------------------------------------------------

    def list(self) -> list[WorkloadInfo]:
        for proc in self._procs.values():
            self._alive(proc)
        return [self._info(p) for p in self._procs.values()]

    def usage(self, workload_id: str, now: float) -> Usage:
        proc = self._procs.get(workload_id)
        if proc is None:
            raise UnknownWorkload(f"no process workload {workload_id!r} on this node")
        if proc.meter is None or not self._alive(proc):
            return Usage(workload_id, now, 0.0, 0, 0.0)
        try:
            reading = proc.meter.read()
        except ProcessGone:
            self._alive(proc)
            return Usage(workload_id, now, 0.0, 0, 0.0)
        return Usage(workload_id, now, reading.cpu_cores, reading.rss_bytes, reading.io_bytes_per_second)

    async def recover(self) -> builtins.list[WorkloadInfo]:
        """Adopt processes a previous node process started (matched by pid and start time)."""
        found: builtins.list[WorkloadInfo] = []
        for directory, record, spec in await asyncio.to_thread(read_records, self.ctx, self.name):
            if spec.workload_id in self._procs:
                continue
            try:
                config = config_from_spec(spec)
            except InvalidSpec as exc:
                log.warning("ignoring process workload %s: %s", spec.workload_id, exc)
                continue
            pid = int(record.get("pid", 0))
            port = record.get("port")
            started_at = float(record.get("started_at", 0.0))
            proc = _Proc(spec, config, directory, started_at, pid, int(port) if port else None, "failed")
            try:
                meter = ProcessTreeMeter(pid)
                if abs(meter.create_time - float(record.get("create_time", -1))) < 0.05 and meter.alive():
                    proc.meter, proc.state = meter, "running"
            except ProcessGone:
                pass
            if record.get("incoming"):
                # A standby of a migration that never switched (its go pipe died with the node):
                # the executor's journal aborts it (migrate_in_abort); it is no hosted workload.
                self._incoming[spec.workload_id] = proc
                continue
            if proc.state == "failed":
                log.warning(
                    "process workload %s (pid %s) is gone; its files stay until it is stopped", spec.workload_id, pid
                )
            self._procs[spec.workload_id] = proc
            found.append(self._info(proc))
        return found

    # ---- migration: target ----------------------------------------------------------------

    def migrate_in_staging(self, workload_id: str, order_id: str) -> Path:
        return self.ctx.workload_dir(workload_id) / INCOMING_SUBDIR

    async def migrate_in_prepare(self, spec: WorkloadSpec, staging: Path) -> IncomingPlan:
        config = config_from_spec(spec)
        wid = spec.workload_id
        if wid in self._procs or wid in self._starting:
            raise AlreadyExists(f"workload {wid!r} already runs on this node")
        await self._discard_incoming(wid)
        staging.mkdir(parents=True, exist_ok=True)
        if config.standby:
            self._incoming[wid] = await self._spawn(spec, config, standby=True)
        return IncomingPlan()

    async def migrate_in_received(self, workload_id: str, staging: Path) -> None:
        """Wait (while the source still serves) until the standby process has started up and
        waits for its go: its start-up then stays out of the downtime."""
        standby = self._incoming.get(workload_id)
        if standby is None or standby.ready_fd is None:
            return
        fd, standby.ready_fd = standby.ready_fd, None
        try:
            if not await _readable(fd, standby.config.start_timeout_seconds):
                log.warning("standby of %s not ready within %g s", workload_id, standby.config.start_timeout_seconds)
        finally:
            os.close(fd)

    async def migrate_in_switch(self, spec: WorkloadSpec, staging: Path) -> WorkloadInfo:
        wid = spec.workload_id
        running = self._procs.get(wid)
        if running is not None and self._alive(running):
            return self._info(running)  # switched already (a repeated Switch)
        directory = self.ctx.workload_dir(wid)
        state = directory / STATE_SUBDIR
        if staging.is_dir():
            await asyncio.to_thread(_replace_dir, staging, state)
        standby = self._incoming.pop(wid, None)
        if standby is not None and standby.go_fd is not None and self._alive(standby):
            proc = standby
            os.write(proc.go_fd, b"g")  # type: ignore[arg-type]
            os.close(proc.go_fd)  # type: ignore[arg-type]
            proc.go_fd = None
            self._procs[wid] = proc
            await asyncio.to_thread(write_record, directory, self._record(proc))
        else:
            if standby is not None:
                await self._terminate(standby)
            config = config_from_spec(spec)
            port = running.port if running is not None else None
            self._procs.pop(wid, None)
            proc = self._procs[wid] = await self._spawn(spec, config, port=port)
        try:
            await self._await_ready(proc)
        except BaseException:
            await self._terminate(proc)
            raise
        proc.state = "running"
        return self._info(proc)

    async def migrate_in_abort(self, workload_id: str, staging: Path) -> None:
        await self._discard_incoming(workload_id)
        if workload_id in self._procs:
            await self.stop(workload_id)
        await asyncio.to_thread(shutil.rmtree, staging, True)
        directory = self.ctx.workload_dir(workload_id)
        if directory.is_dir() and workload_id not in self._procs:
            await asyncio.to_thread(remove_workload_dir, directory)

    async def migrate_in_commit(self, workload_id: str, staging: Path) -> None:
        await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _discard_incoming(self, workload_id: str) -> None:
        standby = self._incoming.pop(workload_id, None)
        if standby is None:
            return
        for name in ("go_fd", "ready_fd"):  # EOF on go: a standby process exits without touching the state
            fd = getattr(standby, name)
            if fd is not None:
                os.close(fd)
                setattr(standby, name, None)
        await self._terminate(standby)

    # ---- migration: source ----------------------------------------------------------------

    def _running(self, workload_id: str) -> _Proc:
        proc = self._procs.get(workload_id)
        if proc is None:
            raise UnknownWorkload(f"no process workload {workload_id!r} on this node")
        if not self._alive(proc):
            raise MigrationUnsupported(f"workload {workload_id!r} is {proc.state}: only a running process moves")
        return proc

    async def migrate_out_transfer(self, workload_id: str, move: OutgoingMove) -> MoveFigures:
        """Pre-copy: the whole state directory while the process still serves."""
        self._running(workload_id)
        await move.send_files(self.state_dir(workload_id))
        move.checkpoint("transfer")
        return MoveFigures()  # the executor counts the bytes it streamed

    async def migrate_out_quiesce(self, workload_id: str, move: OutgoingMove) -> float | None:
        """SIGTERM (the process flushes and exits), then send what changed since the pre-copy."""
        proc = self._running(workload_id)
        proc.state = "migrating"
        quiesced_at = self._clock()
        await self._quiesce(proc)
        await move.send_files(self.state_dir(workload_id), changed_only=True)
        return quiesced_at

    async def _quiesce(self, proc: _Proc) -> None:
        """SIGTERM to the group and return the moment the process has exited (it is part of the
        downtime: no polling interval), SIGKILL after the grace."""
        try:
            root = proc.meter.process if proc.meter is not None else psutil.Process(proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        _signal_group(proc.pid, tree, signal.SIGTERM)
        if not await _exited(proc.pid, proc.config.stop_timeout_seconds):
            await self._terminate(proc)
        elif len(tree) > 1:
            await asyncio.to_thread(psutil.wait_procs, tree[1:], proc.config.stop_timeout_seconds)
        if proc.popen is not None and proc.popen.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.popen.wait, 5.0)

    async def migrate_out_remove(self, workload_id: str) -> None:
        proc = self._procs.pop(workload_id, None)
        if proc is None:
            raise UnknownWorkload(f"no process workload {workload_id!r} on this node")
        await self._terminate(proc)  # already gone after the quiesce; a no-op then
        await asyncio.to_thread(remove_workload_dir, proc.directory)

    async def migrate_out_rollback(self, workload_id: str, spec: WorkloadSpec) -> None:
        """Serve again: respawn the process on its own state directory (same port if it had one)."""
        proc = self._procs.get(workload_id)
        if proc is not None and proc.state != "migrating" and self._alive(proc):
            return
        port = proc.port if proc is not None else None
        if proc is not None:
            await self._terminate(proc)
            self._procs.pop(workload_id, None)
        config = config_from_spec(spec)
        self._starting.add(workload_id)
        try:
            fresh = self._procs[workload_id] = await self._spawn(spec, config, port=port)
        finally:
            self._starting.discard(workload_id)
        await self._await_ready(fresh)
        fresh.state = "running"
        log.info("process workload %s runs again on this node (pid %d)", workload_id, fresh.pid)

    # ---- helpers ---------------------------------------------------------------------------

    def _alive(self, proc: _Proc) -> bool:
        """Whether the process runs; updates the state when it ended on its own."""
        if proc.state in ("stopped", "failed"):
            return False
        if proc.popen is not None:
            code = proc.popen.poll()
            alive = code is None
            proc.exit_code = code
        else:
            alive = proc.meter is not None and proc.meter.alive()
        if not alive and proc.state in ("starting", "running"):
            proc.state = "stopped" if proc.exit_code == 0 else "failed"
        return alive

    def _record(self, proc: _Proc, *, incoming: bool = False) -> dict[str, Any]:
        return {
            "spec": proc.spec.to_dict(),
            "started_at": proc.started_at,
            "pid": proc.pid,
            "create_time": proc.meter.create_time if proc.meter else None,
            "port": proc.port,
            "incoming": incoming,
        }

    def _info(self, proc: _Proc) -> WorkloadInfo:
        endpoint = f"{self.ctx.bind_host}:{proc.port}" if proc.port else ""
        return WorkloadInfo(proc.spec, proc.state, proc.started_at, endpoint, proc.pid)


async def _readable(fd: int, timeout: float) -> bool:
    """Wait until ``fd`` has data or EOF; False after ``timeout``."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(done, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


async def _exited(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` exits (a pidfd wakes the loop at once); False after ``timeout``."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):  # no pidfd (old kernel) or already reaped
        try:
            await asyncio.to_thread(psutil.Process(pid).wait, timeout)
        except psutil.TimeoutExpired:
            return False
        except psutil.Error:
            pass
        return True
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(done, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _replace_dir(source: Path, dest: Path) -> None:
    """Move ``source`` to ``dest``, replacing what was there (a stale state from an earlier try)."""
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(source, dest)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _port_open(host: str, port: int) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _terminate_tree(pid: int, meter: ProcessTreeMeter | None, grace: float) -> None:
    try:
        root = meter.process if meter is not None else psutil.Process(pid)
        if meter is None or not meter.alive():
            return
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    _signal_group(pid, tree, signal.SIGTERM)
    _gone, alive = psutil.wait_procs(tree, timeout=grace)
    if alive:
        log.warning("workload process %s ignored SIGTERM for %g s: SIGKILL", pid, grace)
        _signal_group(pid, alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5.0)


def _signal_group(pid: int, tree: list[psutil.Process], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
    for p in tree:  # descendants that left the group (the group signal missed them)
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getpgid(p.pid) != pid:
                p.send_signal(sig)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return "(no output)"
    return " | ".join(text) or "(no output)"
