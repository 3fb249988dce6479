"""One QEMU process as the qemu driver sees it: its QMP session, its process, its files.

Kept apart from :mod:`agents.drivers.qemu` so the driver module reads as the lifecycle and
migration protocol, and this one as the mechanics (sockets, signals, pid checks, atomic writes).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from qemu.qmp import QMPClient, QMPError, Runstate

from agents.drivers.base import WorkloadSpec
from agents.drivers.qemu_args import MIB, QMP_SOCKET_NAME, QemuConfig

PID_FILE = "qemu.pid"
META_FILE = "vm.json"
LOG_FILE = "qemu.log"
ROLE_HOSTED = "hosted"
ROLE_INCOMING = "incoming"
_FAILED_RUNSTATES = frozenset({"internal-error", "io-error", "guest-panicked", "shutdown", "watchdog"})


def unix_connect(path: Path) -> socket.socket:
    """Connect to a Unix socket whatever the length of its path (through /proc/self/fd)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(path)) < 100:
            sock.connect(str(path))
        else:  # sun_path holds 108 bytes; deep state directories need the detour
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                sock.connect(f"/proc/self/fd/{dir_fd}/{path.name}")
            finally:
                os.close(dir_fd)
    except OSError:
        sock.close()
        raise
    return sock


class QmpSession:
    """One persistent QMP session to a VM.

    QEMU serves a single client per monitor, so every operation (status polls during a
    migration included) shares this connection; it reconnects after QEMU hung up or when used
    from another event loop.
    """

    def __init__(self, vm_dir: Path, name: str, timeout_seconds: float) -> None:
        self._path = vm_dir / QMP_SOCKET_NAME
        self._name = name
        self._timeout = timeout_seconds
        self._client: QMPClient | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def client(self) -> QMPClient:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A session made in another (finished) loop is unusable here, and QEMU accepts a
            # new client only once the old socket is closed.
            self._abandon()
            self._loop, self._lock = loop, asyncio.Lock()
        assert self._lock is not None
        async with self._lock:
            if self._client is not None and self._client.runstate == Runstate.RUNNING:
                return self._client
            await self.close()
            sock = unix_connect(self._path)
            client = QMPClient(self._name)
            try:
                await asyncio.wait_for(client.connect(sock), self._timeout)
            except BaseException:
                sock.close()
                raise
            self._client, self._sock = client, sock
            return client

    async def execute(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        client = await self.client()
        return await asyncio.wait_for(client.execute(cmd, args), self._timeout)

    async def close(self) -> None:
        if self._loop is not asyncio.get_running_loop():
            self._abandon()  # its loop is gone: disconnecting would need it
            return
        client, self._client = self._client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), self._timeout)
            except (TimeoutError, QMPError, OSError, EOFError):
                pass  # QEMU hung up first (quit, crash): nothing left to close.
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _abandon(self) -> None:
        self._client = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class VmPopen(subprocess.Popen[bytes]):
    """A QEMU child that may be detached: it then outlives this object without a warning."""

    detached = False

    def __del__(self, *args: Any, **kwargs: Any) -> None:
        if not self.detached:
            super().__del__(*args, **kwargs)


def runstate_to_state(status: str) -> str:
    """QEMU run state → driver state (``base.STATES``)."""
    if status == "running":
        return "running"
    if status in ("inmigrate", "finish-migrate"):
        return "migrating"
    if status in _FAILED_RUNSTATES:
        return "failed"
    return "stopped"  # paused, postmigrate, prelaunch, suspended…


@dataclass(eq=False)
class VmHandle:
    """A VM of this node: spec, role (hosted or incoming), process and QMP session."""

    spec: WorkloadSpec
    config: QemuConfig
    dir: Path
    role: str
    state: str
    started_at: float
    qmp: QmpSession
    pid: int | None = None
    create_time: float | None = None
    popen: VmPopen | None = None
    proc: psutil.Process | None = None
    migrating: bool = False
    incoming_uri: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # usage(): (at, cpu seconds, io bytes) of the last reading, and the rates it gave
    last: tuple[float, float, int] | None = None
    last_rates: tuple[float, float] = (0.0, 0.0)

    @property
    def workload_id(self) -> str:
        return self.spec.workload_id

    def spawn(self, argv: list[str]) -> None:
        with open(self.dir / LOG_FILE, "ab") as stderr:
            self.popen = VmPopen(
                argv,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # VMs outlive the node process; recover() adopts them
            )
        self.pid = self.popen.pid
        self.proc = psutil.Process(self.pid)
        self.create_time = self.proc.create_time()

    def detach(self) -> None:
        """Let the QEMU process outlive this handle (node shutdown; recover() adopts it)."""
        if self.popen is not None:
            self.popen.detached = True

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        if self.proc is None:
            return False
        try:
            os.waitpid(self.proc.pid, os.WNOHANG)  # reap it if it happens to be our child
        except ChildProcessError:
            pass
        try:
            return self.proc.is_running() and self.proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    async def wait_exit(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.alive():
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def signal(self, sig: int) -> None:
        try:
            if self.popen is not None:
                self.popen.send_signal(sig)
            elif self.proc is not None:
                self.proc.send_signal(sig)  # psutil refuses if the pid now names another process
        except (psutil.Error, ProcessLookupError):
            pass

    async def terminate(self, timeout: float) -> bool:
        """QMP ``quit``, then SIGTERM, then SIGKILL; True once the process is gone."""
        if self.alive():
            try:
                await asyncio.wait_for(self.qmp.execute("quit"), timeout)
            except (TimeoutError, QMPError, OSError, EOFError):
                pass
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if await self.wait_exit(timeout):
                    break
                self.signal(sig)
        gone = await self.wait_exit(timeout)
        await self.qmp.close()
        return gone

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = (self.dir / LOG_FILE).read_text(errors="replace").strip()
        except OSError:
            return "no log"
        return " | ".join(text.splitlines()[-lines:]) or "no message"

    def write_meta(self) -> None:
        """Atomically (temp file, fsync, rename) record what recover() needs."""
        meta = {
            "spec": self.spec.to_dict(),
            "role": self.role,
            "started_at": self.started_at,
            "pid": self.pid,
            "create_time": self.create_time,
            "incoming_uri": self.incoming_uri,
            "extra": self.extra,
        }
        path = self.dir / META_FILE
        tmp = self.dir / f".{META_FILE}.{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as fh:
            fh.write(json.dumps(meta, sort_keys=True).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def find_process(vm_dir: Path, workload_id: str, meta: dict[str, Any]) -> psutil.Process | None:
    """The live QEMU of ``vm_dir``, from its pid file or record, if it still runs.

    A pid counts only if its start time matches the record, its working directory is
    ``vm_dir`` and its command line names the guest: pids are reused after a reboot.
    """
    pids: list[int] = []
    try:
        pids.append(int((vm_dir / PID_FILE).read_text().strip()))
    except (OSError, ValueError):
        pass
    if isinstance(meta.get("pid"), int):
        pids.append(meta["pid"])
    for pid in dict.fromkeys(pids):
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if meta.get("create_time") and abs(proc.create_time() - float(meta["create_time"])) > 1.0:
                continue
            if Path(proc.cwd()).resolve() != vm_dir.resolve():
                continue
            if f"guest={workload_id}" not in proc.cmdline():
                continue
            return proc
        except (psutil.Error, OSError):
            continue
    return None


def read_meta(vm_dir: Path) -> dict[str, Any]:
    """The VM's record, or {} if missing or unreadable."""
    try:
        meta = json.loads((vm_dir / META_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def write_random_file(path: Path, size: int) -> None:
    """``size`` random bytes at ``path`` (written aside, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as fh:
        remaining = size
        while remaining:
            chunk = min(remaining, 4 * MIB)
            fh.write(os.urandom(chunk))
            remaining -= chunk
    os.replace(tmp, path)
