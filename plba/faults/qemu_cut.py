"""The link cut mid-transfer with real QEMU: the live-migration stream itself is severed.

QEMU's migration stream goes straight from the source QEMU to the port the target QEMU listens
on (``migrate-incoming``), not through the executors' gRPC, so no proxy sits on it. The scenario
watches that connection in the kernel (``ss -ti``: bytes acknowledged) and kills it (``ss -K``)
once a share of the guest RAM went over: a cut in the middle of the pre-copy by construction.
The source's migration then fails, the order must roll back, the target discard its incoming
QEMU, and exactly one VM run (on the source).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.drivers.base import WorkloadSpec
from plba.faults.executor import (
    OUTCOME_TIMEOUT_SECONDS,
    WORKLOAD,
    dispatch,
    order,
    pair,
    start_nodes,
    start_workload,
    until,
)
from plba.faults.netcut import bytes_acked_to, can_kill_sockets, kill_sockets
from plba.faults.nodes import NodeProcess
from schemas.settings import Settings
from streams.dispatcher import Dispatcher

if TYPE_CHECKING:
    from plba.faults.executor import Tally

VM_MEMORY_BYTES = 256 << 20
CUT_AFTER_BYTES = 32 << 20  # an eighth of the RAM: well inside the first pre-copy pass
CUT_ATTEMPTS = 3


def qemu_cut_possible() -> str | None:
    """Why the QEMU link cut cannot run here (None: it can)."""
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is not installed"
    if not can_kill_sockets():
        return "cannot kill a TCP connection here (ss -K needs iproute2, CAP_NET_ADMIN and INET_DIAG_DESTROY)"
    return None


def incoming_port(target: NodeProcess) -> int | None:
    """The port the target's incoming QEMU listens on (from its driver's record), once known."""
    meta = target.state_dir / target.node_id / "qemu" / WORKLOAD / "vm.json"
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    uri = str(record.get("incoming_uri") or "")
    if record.get("role") != "incoming" or not uri.startswith("tcp:"):
        return None  # not (yet) waiting for a stream: a hosted VM's record keeps an old address
    return int(uri.rsplit(":", 1)[1])


async def _cut_one(source: NodeProcess, target: NodeProcess) -> tuple[str, int, int, str, dict[str, Any] | None]:
    """Move the VM from ``source`` to ``target`` and cut its stream mid pre-copy.

    (final state, sockets killed, bytes acknowledged at the cut, order id, last record's error).
    """
    endpoints = {source.node_id: source.endpoint, target.node_id: target.endpoint}
    dispatcher = Dispatcher(endpoints.get, retry_backoff_seconds=0.2)
    the_order = order("qemu", source.node_id, target.node_id, deadline=120.0)
    records: list[dict[str, Any]] = []
    task = asyncio.create_task(dispatch(dispatcher, the_order, records))
    killed, acked = 0, 0
    try:
        port = None
        while port is None and not task.done():
            port = incoming_port(target)
            await asyncio.sleep(0.01)
        # Poll the kernel's count tightly: a loopback pre-copy of 256 MiB is short.
        while port is not None and not task.done():
            seen = await asyncio.to_thread(bytes_acked_to, port)
            acked = seen or 0
            if acked >= CUT_AFTER_BYTES:
                killed = await asyncio.to_thread(kill_sockets, port)
                break
        final = await asyncio.wait_for(task, OUTCOME_TIMEOUT_SECONDS)
    finally:
        task.cancel()
        await dispatcher.close()
    error = records[-1].get("error") if records else None
    return final, killed, acked, the_order["order_id"], error


async def link_cut_qemu(settings: Settings, tally: Tally) -> None:
    root = Path(tempfile.mkdtemp(prefix="plba-fq-", dir="/tmp"))  # short: QMP sockets live inside
    try:
        async with pair(settings, root, "qemu") as (na, nb):
            await start_nodes(na, nb)
            spec = WorkloadSpec(WORKLOAD, "vm", "qemu", memory_bytes=VM_MEMORY_BYTES, params={"ram_fill": "random"})
            await start_workload(na, spec)
            source, target = na, nb
            for attempt in range(1, CUT_ATTEMPTS + 1):
                final, killed, acked, oid, error = await _cut_one(source, target)
                if killed or final != "completed":
                    break
                # The pre-copy ended before the poll saw 32 MiB (a very busy machine): the VM
                # moved; cut the move back instead.
                tally.say(f"qemu: attempt {attempt}: the pre-copy finished before the cut; trying the other way")
                source, target = target, source
            if killed:
                tally.add("link_cuts")
                tally.add("qemu_link_cuts")
            if killed and final == "rolled_back" and source.journal().get(oid, {}).get("phase") == "rolled_back":
                tally.add("rollbacks")
            aborted = await until(lambda: target.journal().get(oid, {}).get("phase") == "aborted", 60)
            if aborted:
                tally.add("target_aborts_after_cut")
            count = await tally.one_instance([na, nb], "qemu", source)
            tally.say(f"qemu link cut: {killed} socket(s) killed after {acked} bytes acknowledged, outcome {final} "
                      f"({error}), target aborted: {aborted}, {count} instance(s)")  # fmt: skip
            # A new order then moves the VM: the target kept nothing of the cut migration.
            dispatcher = Dispatcher({na.node_id: na.endpoint, nb.node_id: nb.endpoint}.get, retry_backoff_seconds=0.2)
            try:
                again = order("qemu", source.node_id, target.node_id, deadline=120.0)
                after = await asyncio.wait_for(dispatch(dispatcher, again, []), OUTCOME_TIMEOUT_SECONDS)
            finally:
                await dispatcher.close()
            if after == "completed":
                tally.add("moves_after_heal")
            await tally.one_instance([na, nb], "qemu", target if after == "completed" else source)
            tally.say(f"qemu: a new order after the cut {after}")
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)
