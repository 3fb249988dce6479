"""Real ``plba node`` executor processes for the fault scenarios, and what runs on them.

A :class:`NodeProcess` is one ``plba node`` on a fixed loopback port (a restarted node is found
again by its peers) with its own log; it can be started with the executor's crash hook armed
(``PLBA_FAULT_CRASH_AT``, see agents/migration/faults.py). :func:`instances` counts where a
workload runs, from the executors' own listings and, for ``process`` workloads, from the
operating system (processes whose working directory is under the scenario's folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from agents.executor_client import ExecutorClient
from schemas.settings import Settings, env_var

REPO = Path(__file__).resolve().parents[2]
ACTIVE = ("running", "starting", "migrating")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeProcess:
    """One ``plba node`` process (executor only, no telemetry) on a fixed port."""

    def __init__(
        self,
        settings: Settings,
        node_id: str,
        root: Path,
        drivers: str,
        *,
        env: dict[str, str] | None = None,
        telemetry: Sequence[str] = (),
    ) -> None:
        """``telemetry``: the node's telemetry options (e.g. ``--interval 1``); none: executor only."""
        self.settings = settings
        self.env = dict(env or {})
        self.telemetry = list(telemetry)
        self.node_id = node_id
        self.root = root
        self.state_dir = root / "state"
        self.drivers = drivers
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def journal_dir(self) -> Path:
        return self.state_dir / self.node_id / "migrations"

    def start(self, crash_at: str = "") -> NodeProcess:
        self.starts += 1
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)  # the node reads its own settings; these are the ones that matter here
        env.update(
            {
                env_var("log_level"): "INFO",
                env_var("metrics_port"): "0",
                env_var("traces_dir"): str(self.settings.traces_dir),
                "PLBA_FAULT_CRASH_AT": crash_at,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                **self.env,
            }
        )
        cmd = [
            sys.executable, "-m", "plba.cli.main", "node", "--node-id", self.node_id, "--listen", self.endpoint,
            "--state-dir", str(self.state_dir), "--drivers", self.drivers,
            *(self.telemetry or ["--no-telemetry"]),
        ]  # fmt: skip
        with open(self.root / f"{self.node_id}-{self.starts}.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log(self, tail: int = 3000) -> str:
        text = "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob(f"{self.node_id}-*.log")))
        return text[-tail:]

    async def ready(self, timeout: float = 90.0) -> None:
        """Wait until the executor answers health checks (a slow machine: generous timeout)."""
        deadline = time.monotonic() + timeout
        async with ExecutorClient(self.endpoint, timeout_seconds=2) as client:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    code = self.proc.returncode if self.proc else None
                    raise RuntimeError(f"node {self.node_id} exited with {code}:\n{self.log()}")
                with contextlib.suppress(Exception):  # not up yet
                    if await client.check_health() == "SERVING":
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {self.node_id} never served:\n{self.log()}")
                await asyncio.sleep(0.1)

    async def exited(self, timeout: float = 90.0) -> int | None:
        """The exit code once the process ended; None if it still runs after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.proc is not None and self.proc.poll() is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return None if self.proc is None else int(self.proc.returncode)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def journal(self) -> dict[str, dict[str, Any]]:
        """This node's journal records as stored on disk (order id → record)."""
        out: dict[str, dict[str, Any]] = {}
        for path in sorted(self.journal_dir.glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(path.read_bytes())
                out[str(record["order_id"])] = record
        return out


def workload_processes(root: Path) -> list[psutil.Process]:
    """Live processes whose working directory is under ``root`` (the workloads of its nodes)."""
    found = []
    for proc in psutil.process_iter(["cwd", "status"]):
        try:
            cwd = proc.info["cwd"]
            if cwd and Path(cwd).is_relative_to(root) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, ValueError):
            continue
    return found


def kill_leftovers(root: Path) -> None:
    for proc in workload_processes(root):
        with contextlib.suppress(psutil.Error):
            proc.kill()


async def instances(nodes: Sequence[NodeProcess], workload_id: str, driver: str) -> int:
    """How many instances of ``workload_id`` run: the executors' listings, and for process and
    qemu workloads the OS processes too (the larger count wins: a leaked process counts)."""
    listed = 0
    for node in nodes:
        async with ExecutorClient(node.endpoint, timeout_seconds=15) as client:
            for info in await client.list_workloads():
                if info.spec.workload_id == workload_id and info.state in ACTIVE:
                    listed += 1
    if driver in ("process", "qemu"):
        roots = {node.root for node in nodes}
        running = sum(len(workload_processes(r)) for r in roots)
        return max(listed, running)
    return listed


async def settle_instances(nodes: Sequence[NodeProcess], workload_id: str, driver: str, timeout: float = 30.0) -> int:
    """Poll until exactly one instance runs (a stopping process takes a moment); the last count."""
    deadline = time.monotonic() + timeout
    while True:
        count = await instances(nodes, workload_id, driver)
        if count == 1 or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.2)


async def counter_state(nodes: Sequence[NodeProcess], workload_id: str) -> dict[str, Any] | None:
    """The state a ``counter_app`` workload reports (count, ballast checksum), wherever it runs."""
    for node in nodes:
        async with ExecutorClient(node.endpoint, timeout_seconds=15) as client:
            for info in await client.list_workloads():
                if info.spec.workload_id == workload_id and info.state == "running" and info.endpoint:
                    return await asyncio.to_thread(_get_json, f"http://{info.endpoint}/state")
    return None


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310 - an http:// URL built here
        return json.loads(reply.read())  # type: ignore[no-any-return]
