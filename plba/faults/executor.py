"""Executor-side fault scenarios (issue #9, item 1) with real ``plba node`` processes over gRPC.

:func:`run_executor_faults` runs, ``trials`` times each:

a) **crash at each migration phase**: for the ``process`` and ``sim`` drivers and every
   ``ROLE:PHASE`` crash point of the executor (agents/migration/faults.py), the source or target
   node exits 137 there (the ``kill -9`` state: no cleanup); it is started again and the real
   dispatcher (``streams.dispatcher.Dispatcher``) re-attaches. The outcome must be the one the
   protocol promises for that point, both journals must settle, and exactly one instance runs.
b) **link cut mid-transfer**: the source reaches the target through a :class:`LinkProxy` that
   resets every connection once 1 MiB of an 8 MiB snapshot went through and keeps the link down
   for a few seconds. The migration must roll back, the target abort (once the link is back), the
   workload run once on the source; then a new order over the healed link moves it. Where QEMU
   runs, the same with a live migration: its pre-copy stream (QEMU to QEMU, no proxy on it) is
   killed in the kernel once 32 MiB went over (plba/faults/qemu_cut.py).
c) **duplicate and reordered orders**: the same order three times at once and twice after it
   finished; an older order racing a newer one for the same workload; an older order arriving
   after the newer one moved the workload. Each order may move the workload at most once, the
   stale ones not at all. Once through the dispatcher class over gRPC, once through the broker
   and ``plba dispatcher`` processes, the second one reading every order again
   (plba/faults/orders_kafka.py; skipped, and counted so, when no broker answers).

Every figure is counted from what happened: the crashed node's exit code, the proxy's cuts, the
outcomes the dispatcher received, the executors' journals on disk (each target journals every
phase, so a second execution of an order would show a second ``switched``) and the instance
listings of both nodes plus the operating system's processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from agents.drivers.base import WorkloadSpec
from agents.executor_client import ExecutorClient
from plba.faults.netcut import LinkProxy
from plba.faults.nodes import NodeProcess, counter_state, kill_leftovers, settle_instances
from schemas.settings import Settings
from streams.dispatcher import Dispatcher

# (role, phase) -> the outcome the protocol promises (agents/migration/source.py, target.py)
CRASH_CASES: dict[tuple[str, str], str] = {
    ("source", "prepare"): "rolled_back",
    ("source", "transfer"): "rolled_back",
    ("source", "switch"): "completed",
    ("source", "commit"): "completed",
    ("target", "prepare"): "rolled_back",
    ("target", "transfer"): "rolled_back",
    ("target", "switch"): "completed",
    ("target", "commit"): "completed",
}
CRASH_DRIVERS = ("process", "sim")
# A sim move is modelled: nothing is streamed to the target, so it has no target:transfer point.
NOT_A_CRASH_POINT = {("sim", "target", "transfer")}
CRASH_EXIT_CODE = 137
OUTCOME_TIMEOUT_SECONDS = 180.0  # generous: a busy CI machine restarts nodes slowly
CUT_AFTER_BYTES = 1 << 20
CUT_STATE_BYTES = 8 << 20  # the cut falls at 1/8 of the snapshot
LINK_DOWN_SECONDS = 3.0
WORKLOAD = "w1"

FIELDS = (
    "trials",
    "phase_crashes",
    "phase_crash_completed",
    "phase_crash_rolled_back",
    "phase_crash_unexpected_outcomes",
    "crash_points_not_reached",
    "link_cuts",
    "qemu_link_cuts",
    "qemu_link_cuts_skipped",
    "rollbacks",
    "target_aborts_after_cut",
    "moves_after_heal",
    "duplicate_orders_sent",
    "reordered_orders_sent",
    "orders_redelivered",
    "kafka_orders_skipped",
    "kafka_replays_contradicting",
    "duplicate_migrations",
    "stale_orders_executed",
    "orders_moved_wrongly",
    "reorder_races",
    "reorder_races_won_by_older",
    "instances_checked",
    "instances_not_exactly_one",
    "instances_on_wrong_node",
    "workload_states_checked",
    "workload_state_lost",
    "scenario_errors",
)


class Tally:
    """The counters, and a line of progress for each scenario."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.counts: Counter[str] = Counter({name: 0 for name in FIELDS})
        self._progress = progress

    def say(self, line: str) -> None:
        if self._progress is not None:
            self._progress(line)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    async def one_instance(self, nodes: list[NodeProcess], driver: str, holder: NodeProcess | None = None) -> int:
        """Count the instances (polling until one, for a while); with ``holder``, check it is there."""
        count = await settle_instances(nodes, WORKLOAD, driver)
        self.add("instances_checked")
        if count != 1:
            self.add("instances_not_exactly_one")
        if holder is not None:
            async with ExecutorClient(holder.endpoint, timeout_seconds=15) as client:
                if WORKLOAD not in [w.spec.workload_id for w in await client.list_workloads()]:
                    self.add("instances_on_wrong_node")
        return count

    async def state_kept(self, nodes: list[NodeProcess], before: dict[str, Any] | None) -> None:
        """A counter workload's state went on: its count did not go back, its ballast is the same."""
        if before is None:
            return
        after = await counter_state(nodes, WORKLOAD)
        self.add("workload_states_checked")
        if after is None or after["count"] < before["count"] or after["ballast_sha256"] != before["ballast_sha256"]:
            self.add("workload_state_lost")
            self.say(f"state lost: before {before}, after {after}")


# ---- workloads and orders ---------------------------------------------------------------------


def workload_spec(driver: str, workdir: Path, state_bytes: int = 2 << 20) -> WorkloadSpec:
    if driver == "process":
        command = f"{sys.executable} -m agents.drivers.counter_app --tick 0.05 --state-bytes {state_bytes}"
        return WorkloadSpec(WORKLOAD, "container", "process", memory_bytes=64 << 20, params={"command": command})
    if driver == "sim":
        trace = workdir / "trace.csv"
        if not trace.exists():
            trace.write_text("step,a\n0,20\n1,40\n2,60\n3,80\n4,10\n5,90\n")
        params = {"trace": str(trace), "series": "a", "step_seconds": "10", "speed": "100",
                  "migration_max_seconds": "2"}  # fmt: skip
        return WorkloadSpec(WORKLOAD, "vm", "sim", memory_bytes=2 << 30, cpu_cores=1.0, params=params)
    raise ValueError(f"no fault scenario workload for driver {driver!r}")


def order(driver: str, source: str, target: str, *, issued_ago: float = 0.0, deadline: float = 90.0) -> dict[str, Any]:
    now = time.time()
    kind, method = {"process": ("container", "snapshot"), "qemu": ("vm", "live")}.get(driver, ("vm", "simulated"))
    return {
        "schema_version": 1, "order_id": f"o-{uuid.uuid4().hex[:12]}", "workload_id": WORKLOAD, "kind": kind,
        "source_node": source, "target_node": target, "method": method,
        "reason": {"code": "predicted_overload", "message": "fault scenario"}, "issued_at": now - issued_ago,
        "deadline_at": now + deadline, "dry_run": False, "mode": "enforce", "pool": "faults",
    }  # fmt: skip


async def dispatch(dispatcher: Dispatcher, the_order: dict[str, Any], into: list[dict[str, Any]]) -> str:
    """Carry ``the_order`` out through the real dispatcher; the final state (records into ``into``)."""
    final = ""
    async for kind, record in dispatcher.execute(the_order):
        if kind == "migrations":
            into.append(record)
            final = str(record["state"])
    return final


def executions(records: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many times each order was started, from its ``accepted`` steps.

    An execution publishes one ``accepted`` step; every dispatcher attached to that execution
    (duplicates join the running one) relays the same step, with the same executor time ``at``.
    So executions are the distinct ``at`` values, not the records.
    """
    starts = {(r["order_id"], r.get("at")) for r in records if r.get("state") == "accepted"}
    return Counter(oid for oid, _at in starts)


def moves(nodes: list[NodeProcess], order_id: str) -> int:
    """How many times ``order_id`` switched the workload over, from the target journals' histories."""
    count = 0
    for node in nodes:
        record = node.journal().get(order_id)
        if record is not None and record.get("role") == "target":
            count += sum(1 for phase, _ in record.get("history", []) if phase == "switched")
    return count


async def until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


def journals_settled(source: NodeProcess, target: NodeProcess, order_id: str) -> bool:
    """The source's record is terminal and the target's (if it heard of the order) committed or aborted."""
    src = source.journal().get(order_id, {}).get("phase")
    dst = target.journal().get(order_id, {}).get("phase")
    return src in ("completed", "rolled_back", "failed") and dst in (None, "committed", "aborted")


async def start_nodes(*nodes: NodeProcess) -> None:
    for node in nodes:
        if node.proc is None or node.proc.poll() is not None:
            node.start()
    await asyncio.gather(*(node.ready() for node in nodes))


async def start_workload(node: NodeProcess, spec: WorkloadSpec) -> None:
    async with ExecutorClient(node.endpoint, timeout_seconds=60) as client:
        await client.start_workload(spec)


@contextlib.asynccontextmanager
async def pair(settings: Settings, root: Path, drivers: str, **node_kw: Any) -> Any:
    a, b = NodeProcess(settings, "na", root, drivers, **node_kw), NodeProcess(settings, "nb", root, drivers, **node_kw)
    try:
        yield a, b
    finally:
        await asyncio.to_thread(a.stop)
        await asyncio.to_thread(b.stop)
        kill_leftovers(root)


# ---- a) crash at each phase -------------------------------------------------------------------


def crash_points(driver: str) -> list[tuple[str, str]]:
    """The (role, phase) crash points a move of ``driver`` passes through."""
    return [(role, phase) for role, phase in CRASH_CASES if (driver, role, phase) not in NOT_A_CRASH_POINT]


async def phase_crash(settings: Settings, root: Path, driver: str, role: str, phase: str, tally: Tally) -> None:
    expected = CRASH_CASES[(role, phase)]
    async with pair(settings, root, driver) as (source, target):
        victim = source if role == "source" else target
        victim.start(crash_at=f"{role}:{phase}")
        await start_nodes(source, target)
        await start_workload(source, workload_spec(driver, root))
        before = await counter_state([source], WORKLOAD) if driver == "process" else None
        dispatcher = Dispatcher({"na": source.endpoint, "nb": target.endpoint}.get, retry_backoff_seconds=0.2)
        the_order = order(driver, "na", "nb")
        records: list[dict[str, Any]] = []
        task = asyncio.create_task(dispatch(dispatcher, the_order, records))
        try:
            # The crash, or (a point this driver never reaches) the outcome without one.
            crashed = asyncio.create_task(victim.exited(OUTCOME_TIMEOUT_SECONDS))
            await asyncio.wait({crashed, task}, return_when=asyncio.FIRST_COMPLETED)
            code = await crashed if crashed.done() else await victim.exited(5.0)
            crashed.cancel()
            if code != CRASH_EXIT_CODE:
                tally.add("crash_points_not_reached")
            else:
                tally.add("phase_crashes")
                victim.start()  # the hook disarmed: the restarted node recovers from its journal
                await victim.ready()
            final = await asyncio.wait_for(task, OUTCOME_TIMEOUT_SECONDS)
        finally:
            task.cancel()
            await dispatcher.close()
        tally.add(
            f"phase_crash_{final}" if final in ("completed", "rolled_back") else "phase_crash_unexpected_outcomes"
        )
        if final != expected and final in ("completed", "rolled_back"):
            tally.add("phase_crash_unexpected_outcomes")
        oid = the_order["order_id"]
        settled = await until(lambda: journals_settled(source, target, oid), OUTCOME_TIMEOUT_SECONDS / 3)
        count = await tally.one_instance([source, target], driver, target if final == "completed" else source)
        await tally.state_kept([source, target], before)
        tally.say(f"crash {driver} {role}:{phase}: exit {code}, {final} (expected {expected}), "
                  f"journals {'settled' if settled else 'NOT settled'}, {count} instance(s)")  # fmt: skip
        if not settled:
            tally.add("scenario_errors")


# ---- b) link cut mid-transfer -------------------------------------------------------------------


async def link_cut(settings: Settings, root: Path, tally: Tally) -> None:
    driver = "process"
    async with pair(settings, root, driver) as (source, target):
        await start_nodes(source, target)
        await start_workload(source, workload_spec(driver, root, state_bytes=CUT_STATE_BYTES))
        before = await counter_state([source], WORKLOAD)
        proxy = await LinkProxy(target.endpoint).start()
        dispatcher = Dispatcher({"na": source.endpoint, "nb": proxy.endpoint}.get, retry_backoff_seconds=0.2)
        try:
            proxy.arm(CUT_AFTER_BYTES, LINK_DOWN_SECONDS)
            the_order = order(driver, "na", "nb")
            records: list[dict[str, Any]] = []
            final = await asyncio.wait_for(dispatch(dispatcher, the_order, records), OUTCOME_TIMEOUT_SECONDS)
            cut = proxy.cuts[0] if proxy.cuts else None
            # A cut counts when it severed a live connection after the armed bytes went through.
            if cut is not None and cut.connections_severed > 0 and cut.bytes_forwarded >= CUT_AFTER_BYTES:
                tally.add("link_cuts")
            oid = the_order["order_id"]
            source_phase = source.journal().get(oid, {}).get("phase")
            if final == "rolled_back" and source_phase == "rolled_back" and cut is not None:
                tally.add("rollbacks")
            # The source's Abort reaches the target once the link is back.
            aborted = await until(lambda: target.journal().get(oid, {}).get("phase") == "aborted", 60)
            if aborted:
                tally.add("target_aborts_after_cut")
            count = await tally.one_instance([source, target], driver, source)  # rolled back: where it was
            await tally.state_kept([source, target], before)
            error = records[-1].get("error") if records else None
            tally.say(f"link cut: {cut}, outcome {final} ({error}), target aborted: {aborted}, "
                      f"{count} instance(s)")  # fmt: skip
            # The healed link carries a new order: nothing of the cut move is left in the way.
            await until(lambda: not proxy.down, LINK_DOWN_SECONDS + 5)
            again = order(driver, "na", "nb")
            after = await asyncio.wait_for(dispatch(dispatcher, again, []), OUTCOME_TIMEOUT_SECONDS)
            if after == "completed":
                tally.add("moves_after_heal")
            await tally.one_instance([source, target], driver, target if after == "completed" else source)
            await tally.state_kept([source, target], before)
            tally.say(f"link healed: a new order {after}")
        finally:
            await dispatcher.close()
            await proxy.close()


# ---- c) duplicate and reordered orders --------------------------------------------------------


async def duplicates(settings: Settings, root: Path, tally: Tally) -> None:
    driver = "process"
    async with pair(settings, root, driver) as (na, nb):
        await start_nodes(na, nb)
        await start_workload(na, workload_spec(driver, root))
        before = await counter_state([na], WORKLOAD)
        endpoints = {"na": na.endpoint, "nb": nb.endpoint}
        # Separate dispatchers (separate channels): as if redelivered to several consumers.
        dispatchers = [Dispatcher(endpoints.get, retry_backoff_seconds=0.2) for _ in range(3)]
        records: list[dict[str, Any]] = []
        expected_moves: dict[str, int] = {}
        stale: set[str] = set()
        try:
            # The same order three times at once, then twice after it finished.
            first = order(driver, "na", "nb")
            expected_moves[first["order_id"]] = 1
            finals = await asyncio.gather(*(dispatch(d, first, records) for d in dispatchers))
            tally.add("duplicate_orders_sent", len(dispatchers) - 1)
            for d in dispatchers[:2]:
                finals.append(await dispatch(d, first, records))
                tally.add("duplicate_orders_sent")
            tally.say(f"duplicates: one order sent 5 times: {finals}")

            # An older order for the same workload arrives while the newer one runs.
            newer = order(driver, "nb", "na")
            older = order(driver, "nb", "na", issued_ago=30.0)
            expected_moves[newer["order_id"]] = 1
            expected_moves[older["order_id"]] = 0
            stale.add(older["order_id"])
            newer_records: list[dict[str, Any]] = []
            newer_task = asyncio.create_task(dispatch(dispatchers[0], newer, newer_records))
            await until(lambda: any(r["state"] != "accepted" for r in newer_records) or newer_task.done(), 60, 0.02)
            older_records: list[dict[str, Any]] = []
            older_final = await dispatch(dispatchers[1], older, older_records)
            records.extend(older_records)
            newer_final = await asyncio.wait_for(newer_task, OUTCOME_TIMEOUT_SECONDS)
            records.extend(newer_records)
            tally.add("reordered_orders_sent")
            # An older order arriving after the newer one has moved the workload.
            late = order(driver, "nb", "na", issued_ago=60.0)
            expected_moves[late["order_id"]] = 0
            stale.add(late["order_id"])
            late_records: list[dict[str, Any]] = []
            late_final = await dispatch(dispatchers[2], late, late_records)
            records.extend(late_records)
            tally.add("reordered_orders_sent")
            why = [(r[-1].get("error") or {}).get("code") if r else None for r in (older_records, late_records)]
            tally.say(f"reordered: newer {newer_final}, older while it ran {older_final} ({why[0]}), "
                      f"older after it {late_final} ({why[1]})")  # fmt: skip
        finally:
            for d in dispatchers:
                await d.close()
        accepted = executions(records)
        for oid, want in expected_moves.items():
            moved = moves([na, nb], oid)
            runs = max(moved, accepted[oid])
            tally.add("duplicate_migrations", max(0, runs - 1))
            if oid in stale and moved:
                tally.add("stale_orders_executed")
            if moved != want:
                tally.add("orders_moved_wrongly")
        count = await tally.one_instance([na, nb], driver, na)  # moved to nb and back by the newer order
        await tally.state_kept([na, nb], before)
        tally.say(f"duplicates: moves per order {[moves([na, nb], o) for o in expected_moves]}, {count} instance(s)")


# ---- the entry point ---------------------------------------------------------------------------


async def _run(settings: Settings, workdir: Path, trials: int, tally: Tally) -> None:
    async def guarded(name: str, scenario: Any) -> None:
        try:
            await scenario
        except Exception as exc:  # noqa: BLE001 - counted and reported; the other scenarios still run
            tally.add("scenario_errors")
            tally.say(f"{name}: ERROR {type(exc).__name__}: {exc}")

    for trial in range(trials):
        tally.add("trials")
        for driver in CRASH_DRIVERS:
            for role, phase in crash_points(driver):
                root = workdir / f"t{trial}-{driver[:4]}-{role[0]}{phase[:4]}"
                await guarded(f"crash {driver} {role}:{phase}",
                              phase_crash(settings, root, driver, role, phase, tally))  # fmt: skip
        await guarded("link cut", link_cut(settings, workdir / f"t{trial}-cut", tally))
        from plba.faults.qemu_cut import link_cut_qemu, qemu_cut_possible  # it builds on this module

        why_not = qemu_cut_possible()
        if why_not is None:
            await guarded("qemu link cut", link_cut_qemu(settings, tally))
        else:
            tally.add("qemu_link_cuts_skipped")
            tally.say(f"qemu link cut skipped: {why_not}")
        await guarded("duplicates", duplicates(settings, workdir / f"t{trial}-dup", tally))
        from plba.faults.orders_kafka import kafka_orders  # it builds on this module

        await guarded("orders through Kafka", kafka_orders(settings, workdir / f"t{trial}-kafka", tally))


def run_executor_faults(
    settings: Settings, workdir: Path, trials: int, progress: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Run the executor fault scenarios ``trials`` times; the counts (see the module docstring).

    ``duplicate_migrations``, ``stale_orders_executed``, ``orders_moved_wrongly``,
    ``phase_crash_unexpected_outcomes``, ``instances_not_exactly_one`` and ``scenario_errors``
    are 0 when the executors behave; ``phase_crashes`` is 15 per trial (8 crash points of a
    process move, 7 of a sim move), ``link_cuts`` and ``rollbacks`` 2 per trial (1 without QEMU).
    """
    if trials < 1:
        raise ValueError("trials: at least 1")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tally = Tally(progress)
    asyncio.run(_run(settings, workdir, trials, tally))
    return {name: int(tally.counts[name]) for name in FIELDS}
