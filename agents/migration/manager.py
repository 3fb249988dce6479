"""The executor's migrations: orders it carries out as the source, incoming moves as the target.

One :class:`MigrationManager` per node (``node.migrations``). The executor's gRPC handlers call
it; it owns the node's :class:`~agents.journal.MigrationJournal`, the channels to other
executors and the tasks of the migrations in flight. :meth:`start` (called by ``run_node`` once
the executor serves) recovers what the journal says was in flight when the node stopped.

``Migrate`` is idempotent by ``order_id``: a known order re-attaches to its run (or replays its
terminal step from the journal); a new one is checked (deadline, workload, driver, method,
kind, one move per workload at a time) and either refused with a terminal step whose error
code says why, or started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.drivers.base import _ID, DriverError, InvalidSpec, UnknownWorkload
from agents.journal import JournalEntry, JournalError, MigrationJournal, check_order_id
from agents.migration.faults import CrashPoints
from agents.migration.peer import Peers
from agents.migration.progress import MigrationRun, progress_from_dict, progress_to_dict
from agents.migration.source import SourceMigration, order_to_dict
from agents.migration.target import TargetSide, WrongPhase
from schemas import executor_pb2 as pb

if TYPE_CHECKING:
    from agents.node import Node

log = logging.getLogger(__name__)

JOURNAL_DIR = "migrations"


class MigrationManager:
    """See the module docstring."""

    def __init__(
        self,
        node: Node,
        *,
        tls_dir: Path | None = None,
        crash_at: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.clock = clock
        self.journal = MigrationJournal(node.state_dir / JOURNAL_DIR, clock)
        self.journal.prune()
        self.peers = Peers(lambda: tls_dir or node.tls_dir, clock)
        self.crash = CrashPoints(crash_at)
        self.target = TargetSide(self)
        self.runs: dict[str, MigrationRun] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task owned by the manager (cancelled by :meth:`close`); errors are logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("migration task %s failed", task.get_name(), exc_info=task.exception())

    async def start(self) -> None:
        """Recover in-flight migrations from the journal (once; later calls wait for the first)."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._recover())
        await asyncio.shield(self._started)

    async def _recover(self) -> None:
        for entry in self.journal.in_flight("source"):
            try:
                migration = self._source(entry)
            except DriverError as exc:
                log.error("order %s: cannot recover (%s); left in the journal", entry.order_id, exc)
                continue
            migration.run_.task = self.spawn(migration.resume(), f"migrate-{entry.order_id}")
        await self.target.recover()
        if self.journal.in_flight():
            log.info("recovering %d migration(s) from the journal", len(self.journal.in_flight()))

    def _source(self, entry: JournalEntry) -> SourceMigration:
        run = self.runs.get(entry.order_id)
        if run is None:
            run = self.runs[entry.order_id] = MigrationRun(entry.order_id, entry.workload_id)
        return SourceMigration(self, entry, run)

    async def close(self) -> None:
        """Stop the tasks (a migration in flight resumes from the journal at the next start)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.peers.close()

    # ---- Migrate ---------------------------------------------------------------------------

    def busy(self, workload_id: str) -> str | None:
        """The order moving ``workload_id`` in or out of this node, if any."""
        for role in ("source", "target"):
            entry = self.journal.active_for(workload_id, role)
            if entry is not None:
                return entry.order_id
        return None

    async def submit(self, order: pb.MigrationOrder) -> tuple[MigrationRun, bool]:
        """The run of ``order`` and whether it is new (read it from its first step then)."""
        _check_order(order)
        await self.start()
        run = self.runs.get(order.order_id)
        entry = self.journal.get(order.order_id)
        if entry is not None and entry.role != "source":
            raise InvalidSpec(f"order {order.order_id} arrives on node {self.node.node_id}, it does not leave it")
        if entry is not None and entry.workload_id != order.workload_id:
            raise InvalidSpec(f"order {order.order_id} moves {entry.workload_id!r} here, not {order.workload_id!r}")
        if run is not None:
            return run, False
        if entry is not None and not entry.terminal:
            raise WrongPhase(
                f"order {order.order_id} is in flight ({entry.phase}) but cannot resume on node {self.node.node_id}: "
                f"driver {entry.driver!r} is not enabled here"
            )
        if entry is not None:  # terminal: replay the outcome
            run = self.runs[order.order_id] = MigrationRun(order.order_id, order.workload_id)
            run.publish(progress_from_dict(entry.last_progress))
            return run, False
        run = self.runs[order.order_id] = MigrationRun(order.order_id, order.workload_id)
        refusal = self._refusal(order)
        if refusal is not None:
            state, code, message = refusal
            self._refuse(order, run, state, code, message)
            return run, True
        info = self.node.workload(order.workload_id)
        driver = self.node.driver(info.spec.driver)
        spec = driver.migrate_out_spec(order.workload_id)
        entry = self.journal.create(
            order.order_id,
            order.workload_id,
            "source",
            "preparing",
            driver=driver.name,
            method=driver.migration_method,
            order=order_to_dict(order),
            spec=spec.to_dict(),
            peer_endpoint=order.target_endpoint,
        )
        self.journal.write(entry)
        migration = SourceMigration(self, entry, run)
        run.task = self.spawn(migration.run(), f"migrate-{order.order_id}")
        log.info("order %s: moving %s workload %s to %s (%s)", order.order_id, driver.name, order.workload_id,
                 order.target_node, order.target_endpoint)  # fmt: skip
        return run, True

    def _refusal(self, order: pb.MigrationOrder) -> tuple[str, str, str] | None:
        """Why this node will not carry ``order`` out: (state, error code, message), or None."""
        node = self.node
        if order.dry_run:
            return "rejected", "dry_run", "a dry-run order is never executed"
        now = self.clock()
        if order.deadline_at and now > order.deadline_at:
            return "expired", "deadline_passed", f"the order's deadline passed {now - order.deadline_at:.1f} s ago"
        if order.source_node and order.source_node != node.node_id:
            return "rejected", "wrong_source", f"this is node {node.node_id}, the order's source is {order.source_node}"
        if order.target_node and order.target_node == node.node_id:
            return "rejected", "target_is_source", f"node {node.node_id} is both the source and the target"
        try:
            info = node.workload(order.workload_id)
        except UnknownWorkload:
            return "rejected", "unknown_workload", f"no workload {order.workload_id!r} on node {node.node_id}"
        driver = node.driver(info.spec.driver)
        if not driver.migration_method:
            return "rejected", "migration_unsupported", f"driver {driver.name} cannot migrate workloads"
        if order.method and order.method != driver.migration_method:
            how = f"moves by {driver.migration_method}, not {order.method}"
            return "rejected", "method_mismatch", f"workload {order.workload_id} ({driver.name}) {how}"
        if order.kind and order.kind != info.spec.kind:
            return (
                "rejected",
                "kind_mismatch",
                f"workload {order.workload_id} is a {info.spec.kind}, not a {order.kind}",
            )
        busy = self.busy(order.workload_id)
        if busy is not None:
            return "rejected", "migration_in_progress", f"workload {order.workload_id} is being moved by order {busy}"
        if info.state != "running":
            return "rejected", "workload_not_running", f"workload {order.workload_id} is {info.state}"
        return None

    def _refuse(self, order: pb.MigrationOrder, run: MigrationRun, state: str, code: str, message: str) -> None:
        step = pb.MigrationProgress(
            order_id=order.order_id,
            workload_id=order.workload_id,
            state=state,
            at=self.clock(),
            source_node=order.source_node or self.node.node_id,
            target_node=order.target_node,
            method=order.method,
            attempt=max(order.attempt, 1),
            dry_run=order.dry_run,
            error=pb.MigrationError(code=code, message=message),
            message=message,
            total_seconds=0.0,
        )
        entry = self.journal.create(
            order.order_id, order.workload_id, "source", state, order=order_to_dict(order),
            error={"code": code, "message": message}, last_progress=progress_to_dict(step),
        )  # fmt: skip
        try:
            self.journal.write(entry)
        except JournalError:
            log.exception("order %s: could not journal the refusal", order.order_id)
        run.publish(step)
        log.info("order %s: %s (%s: %s)", order.order_id, state, code, message)

    async def follow(self, order: pb.MigrationOrder) -> AsyncIterator[pb.MigrationProgress]:
        run, new = await self.submit(order)
        async for step in run.follow(from_start=new):
            yield step

    # ---- MigrationStatus -------------------------------------------------------------------

    def status(self, order_id: str) -> pb.MigrationStatusResponse:
        try:
            check_order_id(order_id)
        except JournalError as exc:
            raise InvalidSpec(f"order_id: {exc}") from exc
        entry = self.journal.get(order_id)
        if entry is None:
            raise UnknownWorkload(f"no migration {order_id!r} in the journal of node {self.node.node_id}")
        reply = pb.MigrationStatusResponse(
            order_id=entry.order_id,
            workload_id=entry.workload_id,
            role=entry.role,
            phase=entry.phase,
            updated_at=entry.updated_at,
        )
        run = self.runs.get(order_id)
        if entry.role == "source" and run is not None and run.last is not None:
            reply.last_progress.CopyFrom(run.last)
        elif entry.last_progress:
            reply.last_progress.CopyFrom(progress_from_dict(entry.last_progress))
        return reply


def _check_order(order: pb.MigrationOrder) -> None:
    try:
        check_order_id(order.order_id)
    except JournalError as exc:
        raise InvalidSpec(f"order.order_id: {exc}") from exc
    if not _ID.match(order.workload_id):
        raise InvalidSpec(f"order.workload_id: {order.workload_id!r}: use 1-128 of [A-Za-z0-9._-]")
    if not order.target_endpoint:
        raise InvalidSpec("order.target_endpoint: required (host:port of the target's executor)")
