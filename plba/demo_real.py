"""``plba demo --real``: three nodes with QEMU VMs and CPU-burning processes, real migrations.

What differs from the sim demo is where load comes from and what a move does:

* load: ``process`` workloads running :mod:`plba.demo_burner`, which make their measured CPU
  follow a shared trace in compressed time. Node 0 gets two of them whose series climb together
  about 45 % into the run (an Alibaba evening rise), so its real utilization crosses the trigger
  threshold unless PLBA moves one first;
* moves: a process workload moves by checksummed snapshot transfer (``snapshot``), a QEMU VM by
  QEMU's own live migration (``live``); the VMs (tiny, TCG: no guest OS, idle) are what the
  maintenance window on node 1 evacuates live.

Capacities are small on purpose: the host has 2 cores shared by the broker, the worker, three
node processes and the workloads, so each node offers ``REAL_NODE_CORES`` of it. That is enough
for node 0's two burners (about 0.67 cores at the top of their series) to exceed it while the
whole demo stays under one core of burning, and leaves node 2 room for one of them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from agents.drivers.base import WorkloadSpec
    from plba.demo import DemoConfig, Placement

REAL_NODES = 3
REAL_NODE_CORES = 0.6  # cores each node offers: node 0's burners top out near 0.67, its neighbours idle
REAL_NODE_MEMORY = "2G"
# Cores a burner uses at 100 % of its series: node 0's high-priority one, its low-priority one
# (the candidate), and node 1's small one. Sized so that the candidate at its peak (~0.32) still
# fits under the target ratio of node 2 (two idle VMs, the small burner and the node agent's own
# CPU, ~0.06), which after the maintenance announcement is the only possible target, and that
# node 0 is relieved by that one move (~0.35 + 0.03 of 0.6).
STAY_CORES, MOVE_CORES, SMALL_CORES = 0.45, 0.45, 0.05
VM_MEMORY_BYTES = 64 << 20  # the size the QEMU tests use: TCG migrates it in seconds
PROCESS_MEMORY_BYTES = 128 << 20
# Where in the Alibaba series the run starts, and where node 0's two series climb together
# (m_1937: 35 -> 77 %, m_1940: 37 -> 72 % over the next 15 steps, then a plateau until ~395).
# The start is a flat stretch of both (39 % and 27 %), so the forecasters settle before the
# climb (a young forecaster's wide interval alone can trigger a move); at x300 the climb begins
# 38 s into the run, after the maintenance announcement.
START_STEP = 307
RISE_STEP = 345
REAL_DRIVERS = "qemu,process"


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


def plan_real(cfg: DemoConfig) -> list[Placement]:
    """The real demo's five workloads on three nodes (deterministic).

    node 0: two burners (the low-priority one is the one to move when their series climb);
    node 1: a VM and a small burner (the maintenance window evacuates both: a live migration);
    node 2: a VM, the spare room for moves.
    """
    from plba.demo import Placement

    offset = START_STEP * 300.0
    return [
        # The candidate follows the series that is higher from the start, so moving it relieves
        # node 0 whenever the policy acts (moving only the other would not).
        Placement("burn-0-a", 0, "m_1940", 800, offset, driver="process", cores=STAY_CORES),
        Placement("burn-0-b", 0, "m_1937", 10, offset, driver="process", cores=MOVE_CORES),
        Placement("vm-1", 1, "", 10, 0.0, driver="qemu"),
        Placement("burn-1-a", 1, "m_1936", 500, offset, driver="process", cores=SMALL_CORES),
        Placement("vm-2", 2, "", 500, 0.0, driver="qemu"),
    ]


def real_node_cores() -> float:
    return REAL_NODE_CORES


def node_args(cfg: DemoConfig) -> list[str]:
    """Drivers and capacity of a real node (see the module docstring for the sizes)."""
    cores = f"{REAL_NODE_CORES:g}"
    return ["--drivers", REAL_DRIVERS, "--capacity-cores", cores, "--capacity-memory", REAL_NODE_MEMORY]


def real_spec(cfg: DemoConfig, p: Placement, anchor: float, traces_dir: Path) -> WorkloadSpec:
    from agents.drivers.base import WorkloadSpec

    if p.driver == "qemu":
        # Random RAM: the live migration carries 64 MiB of real data, not zero pages.
        return WorkloadSpec(workload_id=p.workload_id, kind="vm", driver="qemu", memory_bytes=VM_MEMORY_BYTES,
                            cpu_cores=1.0, priority=p.priority, app=f"app-{p.priority}",
                            params={"ram_fill": "random"})  # fmt: skip
    command = [
        sys.executable, "-m", "plba.demo_burner", "--trace", cfg.trace, "--series", p.series,
        "--traces-dir", str(traces_dir), "--speed", f"{cfg.speed:g}", "--offset-seconds", f"{p.offset_seconds:.3f}",
        "--anchor-at", f"{anchor:.3f}", "--cores", f"{p.cores:g}",
    ]  # fmt: skip
    return WorkloadSpec(
        workload_id=p.workload_id, kind="container", driver="process", memory_bytes=PROCESS_MEMORY_BYTES,
        cpu_cores=p.cores, priority=p.priority, app=f"app-{p.priority}",
        # standby: the target loads the trace before the switch, so the downtime holds no start-up.
        params={"command": shlex.join(command), "port": "none", "standby": "yes", "stop_timeout_seconds": "5"},
    )  # fmt: skip


def tidy(workdir: Path) -> None:
    """Drop the VMs' RAM fill files (64 MiB per node) from the run's directory; the logs stay."""
    for fill in workdir.glob("nodes/*/qemu/.fill"):
        shutil.rmtree(fill, ignore_errors=True)


def leftovers(prefix: str, workdir: Path) -> list[psutil.Process]:
    """Processes of this demo still alive: the demo's environment (nodes, workers, and the
    workloads and QEMUs they started inherit it) or its work directory on the command line."""
    me, marker, found = os.getpid(), str(workdir), []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.pid == me:
            continue
        try:
            ours = any(marker in a for a in p.info["cmdline"] or ()) or p.environ().get("PLBA_TOPIC_PREFIX") == prefix
            if ours and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def sweep(prefix: str, workdir: Path, grace: float = 5.0) -> list[str]:
    """Stop what the nodes left behind (a node killed mid-way leaves its VMs running, as it
    should in production); returns the command names stopped, for the summary."""
    procs = leftovers(prefix, workdir)
    names: list[str] = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            names.append(p.name())
            p.send_signal(signal.SIGTERM)
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)
    return names


def migration_kinds(
    migrations: dict[str, dict[str, Any]], orders: list[dict[str, Any]], t0: float = 0.0
) -> list[dict[str, Any]]:
    """Every migration of the run: which workload, how (driver, method), why (with the order's
    figures: source ratio now, predicted peak, lead time), when (seconds into the run), how it ended."""
    by_id = {o["order_id"]: o for o in orders}
    out = []
    for order_id, m in sorted(migrations.items(), key=lambda kv: kv[1].get("at", 0.0)):
        o = by_id.get(order_id, {})
        why = o.get("reason", {})
        issued = o.get("issued_at")
        out.append({
            "workload_id": m["workload_id"], "driver": m.get("driver"), "method": m.get("method"),
            "kind": _kind(m.get("method")), "reason": why.get("code"),
            "ordered_at_seconds": None if issued is None else round(issued - t0, 1),
            "current_ratio": why.get("current_ratio"), "predicted_peak_ratio": why.get("predicted_peak_ratio"),
            "lead_time_seconds": why.get("lead_time_seconds"),
            "from": m.get("source_node"), "to": m.get("target_node"), "state": m["state"],
            "downtime_seconds": m.get("downtime_seconds"), "transferred_bytes": m.get("transferred_bytes"),
        })  # fmt: skip
    return out


def _kind(method: str | None) -> str:
    return {
        "live": "vm live migration", "snapshot": "process snapshot transfer", "simulated": "simulated",
        "reroute": "function re-routing",
    }.get(method or "", method or "unknown")  # fmt: skip
