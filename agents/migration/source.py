"""The source side of a migration: the coordinator of one order.

The source drives the target (PrepareIncoming → Transfer → Switch → Commit, or Abort) and owns
the decision. Its journal's ``committing`` phase is the commit point: before it any failure rolls
back (the target's instance is discarded, the source serves again); from it on the move is
finished forwards (the target is told to commit, the source instance removed), also after a
crash. Rollback order matters: when the target may already run the workload (after a Switch was
sent, or once QEMU completed a live migration on its own) the target's abort must be
acknowledged before the source resumes; otherwise the source resumes at once and the target is
told in the background (its reservation ends anyway).

Recovery after a restart, by journaled phase: ``preparing``/``transferring`` roll back;
``switching`` asks the target — switched means finish forwards, anything else rolls back;
``committing`` finishes forwards; ``rolling_back`` finishes the rollback.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format

from agents.drivers.base import DriverError, IncomingPlan, MoveFigures, UnknownWorkload, WorkloadSpec
from agents.executor_wire import spec_to_proto
from agents.journal import JournalEntry
from agents.migration.peer import PeerError, PeerRefused, PeerUnreachable
from agents.migration.progress import MigrationRun, progress_from_dict, progress_to_dict
from agents.migration.snapshot import SnapshotSender
from schemas import executor_pb2 as pb

if TYPE_CHECKING:
    from agents.migration.manager import MigrationManager

log = logging.getLogger(__name__)

PREPARE_TIMEOUT_SECONDS = 60.0  # a target QEMU or function pool has to start
PREPARE_RETRY_SECONDS = 10.0
SWITCH_TIMEOUT_SECONDS = 60.0
CONTROL_TIMEOUT_SECONDS = 10.0  # Commit, Abort, MigrationStatus
PROGRESS_INTERVAL_SECONDS = 0.5
ABORT_BACKGROUND_SECONDS = 120.0
ACTIVE = ("running", "starting", "migrating")

# PrepareIncoming refusals → (state, error code) of the order.
_PREPARE_REFUSALS = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("rejected", "target_capacity"),
    grpc.StatusCode.ALREADY_EXISTS: ("rejected", "target_has_workload"),
    grpc.StatusCode.INVALID_ARGUMENT: ("rejected", "target_incompatible"),
    grpc.StatusCode.FAILED_PRECONDITION: ("rejected", "target_incompatible"),
    grpc.StatusCode.NOT_FOUND: ("rejected", "target_incompatible"),
    grpc.StatusCode.UNIMPLEMENTED: ("rejected", "target_incompatible"),
    grpc.StatusCode.PERMISSION_DENIED: ("rejected", "target_refused"),
    grpc.StatusCode.UNAUTHENTICATED: ("rejected", "target_refused"),
}


class Outcome(Exception):
    """Ends a migration before the commit point with ``state`` and an error."""

    def __init__(self, state: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.state = state
        self.code = code
        self.message = message


# The protocol phase each published step starts (for the executor's phase counters).
_PHASE_OF_STATE = {"preparing": "prepare", "transferring": "transfer", "switching": "switch"}


def order_to_dict(order: pb.MigrationOrder) -> dict[str, Any]:
    return json_format.MessageToDict(order, preserving_proto_field_name=True)


def order_from_dict(data: dict[str, Any]) -> pb.MigrationOrder:
    msg = pb.MigrationOrder()
    json_format.ParseDict(data, msg, ignore_unknown_fields=True)
    return msg


class _Move:
    """The :class:`~agents.drivers.base.OutgoingMove` a source driver works with."""

    def __init__(self, migration: SourceMigration, plan: IncomingPlan) -> None:
        self._m = migration
        self.order_id = migration.entry.order_id
        self.incoming = plan
        self.deadline_at = migration.order.deadline_at
        self.sender: SnapshotSender | None = None
        self.bytes_sent = 0
        self._last_progress = 0.0

    async def send_files(self, root: Path, *, changed_only: bool = False) -> int:
        if self.sender is None or self.sender.root != Path(root):
            self.sender = SnapshotSender(Path(root))
        sender = self.sender
        files = sender.plan(changed_only=changed_only)
        if not files:
            return 0
        before = sender.bytes_sent
        timeout = max(1.0, self.deadline_at - self._m.mgr.clock())
        stub = self._m.mgr.peers.stub(self._m.target, self._m.order.target_node)
        try:
            reply = await stub.Transfer(sender.chunks(self.order_id, files), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            code = "transfer_checksum" if exc.code() == grpc.StatusCode.DATA_LOSS else "transfer_failed"
            raise Outcome(
                "rolled_back", code, f"Transfer to {self._m.target}: {exc.code().name}: {exc.details()}"
            ) from exc
        sent = {f.path: (f.size_bytes, bytes(f.sha256)) for f in sender.manifest()}
        for stored in reply.files:
            if sent.get(stored.path) != (stored.size_bytes, bytes(stored.sha256)):
                raise Outcome("rolled_back", "transfer_checksum", f"the target stored {stored.path!r} differently")
        moved = sender.bytes_sent - before
        self.bytes_sent += moved
        if not changed_only:  # the second pass runs while switching: no transferring step then
            await self.progress(0.9, self.bytes_sent)
        return moved

    async def progress(self, ratio: float, transferred_bytes: int, message: str = "") -> None:
        now = self._m.mgr.clock()
        if now - self._last_progress < PROGRESS_INTERVAL_SECONDS and ratio < 1.0:
            return
        self._last_progress = now
        self._m.emit(
            "transferring",
            progress_ratio=min(max(ratio, 0.0), 1.0),
            transferred_bytes=max(int(transferred_bytes), 0),
            message=message,
        )

    def checkpoint(self, point: str) -> None:
        self._m.mgr.crash.reach("source", point)


class SourceMigration:
    """One outgoing order; :meth:`run` for a new one, :meth:`resume` after a restart."""

    def __init__(self, mgr: MigrationManager, entry: JournalEntry, run: MigrationRun) -> None:
        self.mgr = mgr
        self.entry = entry
        self.run_ = run
        self.order = order_from_dict(entry.order)
        self.target = self.order.target_endpoint
        self.wid = entry.workload_id
        self.driver = mgr.node.driver(entry.driver)

    # ---- progress ------------------------------------------------------------------------

    def step(self, state: str, **fields: Any) -> pb.MigrationProgress:
        o = self.order
        now = self.mgr.clock()
        msg = pb.MigrationProgress(
            order_id=o.order_id,
            workload_id=o.workload_id,
            state=state,
            at=now,
            source_node=o.source_node or self.mgr.node.node_id,
            target_node=o.target_node,
            driver=self.entry.driver,
            method=self.entry.method,
            attempt=max(o.attempt, 1),
            dry_run=o.dry_run,
        )
        for name, value in fields.items():
            if value is None:
                continue
            if name == "error":
                msg.error.code, msg.error.message = value
            else:
                setattr(msg, name, value)
        if state in ("completed", "failed", "rolled_back", "rejected", "expired"):
            msg.total_seconds = max(0.0, now - self.entry.created_at)
        return msg

    def emit(self, state: str, **fields: Any) -> pb.MigrationProgress:
        msg = self.step(state, **fields)
        self.run_.publish(msg)
        self._observe(msg)
        return msg

    def _observe(self, msg: pb.MigrationProgress) -> None:
        """Count the move in the node's metrics: a phase per step, figures on completion."""
        metrics = self.mgr.node.metrics
        if metrics is None:
            return
        phase = _PHASE_OF_STATE.get(msg.state)
        if phase is not None:
            metrics.record_phase(self.entry.driver, phase, "ok")
        if msg.state == "completed":
            metrics.record_phase(self.entry.driver, "commit", "ok")
            metrics.record_migration(
                self.entry.driver, "source", duration_seconds=msg.total_seconds,
                downtime_seconds=msg.downtime_seconds if msg.HasField("downtime_seconds") else None,
            )  # fmt: skip
        elif msg.state in ("failed", "rolled_back"):
            metrics.record_phase(self.entry.driver, "abort", "failed" if msg.state == "failed" else "ok")

    def journal(self, phase: str, step: pb.MigrationProgress | None = None, **values: Any) -> None:
        if step is not None:
            values["last_progress"] = progress_to_dict(step)
        self.mgr.journal.write(self.entry, phase, **values)

    # ---- forwards ------------------------------------------------------------------------

    async def run(self) -> None:
        """Carry out a new order (its entry is journaled as ``preparing``)."""
        self.emit("accepted", progress_ratio=0.0)
        self.emit("preparing", progress_ratio=0.0)
        deadline_in = self.order.deadline_at - self.mgr.clock()
        try:
            async with asyncio.timeout(max(deadline_in, 0.0)):
                figures, quiesced_at, reply, move = await self._until_switched()
        except Outcome as out:
            await self._rollback(out.state, out.code, out.message)
            return
        except TimeoutError:
            await self._rollback("rolled_back", "deadline_passed", "the order's deadline passed before the switch")
            return
        except PeerError as exc:
            await self._rollback("rolled_back", "target_unreachable" if exc.transient else "target_refused", str(exc))
            return
        except DriverError as exc:
            log.warning("order %s: %s", self.entry.order_id, exc)
            await self._rollback("rolled_back", "driver_failed", str(exc))
            return
        except Exception as exc:
            log.exception("order %s failed inside the executor", self.entry.order_id)
            await self._rollback(
                "rolled_back", "internal", f"{type(exc).__name__} inside the source executor; see its log"
            )
            return
        downtime = figures.downtime_seconds
        if downtime is None:
            downtime = max(0.0, reply.ready_at - quiesced_at) if quiesced_at and reply.ready_at else 0.0
        await self._decide_commit(
            endpoint=reply.workload_endpoint,
            downtime=downtime,
            transferred=figures.transferred_bytes + move.bytes_sent,
            message=figures.message,
        )

    async def _until_switched(self) -> tuple[MoveFigures, float | None, pb.SwitchResponse, _Move]:
        plan = await self._prepare()
        self.mgr.crash.reach("source", "prepare")
        self.journal("transferring")
        self.emit("transferring", progress_ratio=0.0, transferred_bytes=0)
        move = _Move(self, plan)
        figures = await self.driver.migrate_out_transfer(self.wid, move)
        move.checkpoint("transfer")
        step = self.emit("switching", progress_ratio=1.0)
        sent = figures.transferred_bytes + move.bytes_sent
        self.journal("switching", step, extra={**self.entry.extra, "transferred_bytes": sent})
        quiesced_at = await self.driver.migrate_out_quiesce(self.wid, move)
        manifest = move.sender.manifest() if move.sender is not None else []
        request = pb.SwitchRequest(order_id=self.entry.order_id, quiesced_at=quiesced_at or 0.0, files=manifest)
        try:
            reply = await self._call("Switch", request, SWITCH_TIMEOUT_SECONDS, retry_until=self.order.deadline_at)
        except PeerRefused as exc:
            code = "transfer_checksum" if exc.code == grpc.StatusCode.DATA_LOSS else "switch_refused"
            raise Outcome(
                "rolled_back", code, f"target {self.order.target_node}: {exc.code.name}: {exc.details}"
            ) from exc
        move.checkpoint("switch")
        await self.driver.migrate_out_switched(self.wid, reply.workload_endpoint)
        return figures, quiesced_at, reply, move

    async def _prepare(self) -> IncomingPlan:
        spec = WorkloadSpec.from_dict(self.entry.spec)
        request = pb.PrepareIncomingRequest(
            order=self.order, spec=spec_to_proto(spec), source_endpoint=self.mgr.node.endpoint or ""
        )
        # Give up a moment before the deadline, so an unreachable target is reported as such.
        now = self.mgr.clock()
        retry_until = max(now, min(self.order.deadline_at - 1.0, now + PREPARE_RETRY_SECONDS))
        try:
            reply = await self._call("PrepareIncoming", request, PREPARE_TIMEOUT_SECONDS, retry_until=retry_until)
        except PeerRefused as exc:
            if exc.code == grpc.StatusCode.ABORTED:  # e.g. the target restarted meanwhile
                message = f"target {self.order.target_node}: {exc.details}"
                raise Outcome("rolled_back", "target_aborted", message) from exc
            state, code = _PREPARE_REFUSALS.get(exc.code, ("failed", "target_prepare_failed"))
            raise Outcome(
                state, code, f"target {self.order.target_node} refused: {exc.code.name}: {exc.details}"
            ) from exc
        except PeerUnreachable as exc:
            raise Outcome("failed", "target_unreachable", f"target {self.order.target_node}: {exc}") from exc
        self.entry.extra["reserved_until_at"] = reply.reserved_until_at
        return IncomingPlan(incoming_uri=reply.incoming_uri, params=dict(reply.params))

    async def _call(self, method: str, request: Any, timeout: float, *, retry_until: float | None = None) -> Any:
        return await self.mgr.peers.call(
            self.target, method, request, timeout=timeout, retry_until=retry_until, node_id=self.order.target_node
        )

    # ---- the commit point and after ------------------------------------------------------

    async def _decide_commit(self, *, endpoint: str, downtime: float, transferred: int, message: str = "") -> None:
        extra = {**self.entry.extra, "workload_endpoint": endpoint, "downtime_seconds": downtime}
        extra["transferred_bytes"] = int(transferred)
        if message:
            extra["message"] = message
        self.journal("committing", extra=extra)  # the commit point
        self.mgr.crash.reach("source", "commit")
        await self._finish()

    async def _finish(self) -> None:
        """From the commit point: tell the target and remove the source instance (both at once:
        the decision is taken), then report."""
        await asyncio.gather(self._commit_target(), self._remove_source())
        extra = self.entry.extra
        step = self.step(
            "completed",
            progress_ratio=1.0,
            downtime_seconds=float(extra.get("downtime_seconds") or 0.0),
            transferred_bytes=int(extra.get("transferred_bytes") or 0),
            workload_endpoint=str(extra.get("workload_endpoint") or ""),
            message=str(extra.get("message") or ""),
        )
        self.journal("completed", step)
        self.run_.publish(step)
        self._observe(step)
        log.info("order %s: %s moved to %s (downtime %.3f s, %d bytes)", self.entry.order_id, self.wid,
                 self.order.target_node, step.downtime_seconds, step.transferred_bytes)  # fmt: skip

    async def _commit_target(self) -> None:
        try:
            await self._call("Commit", pb.CommitRequest(order_id=self.entry.order_id), CONTROL_TIMEOUT_SECONDS,
                             retry_until=self.mgr.clock() + CONTROL_TIMEOUT_SECONDS)  # fmt: skip
        except PeerRefused as exc:
            log.error("order %s: the target refused Commit: %s", self.entry.order_id, exc)
        except PeerUnreachable:
            log.warning("order %s: the target is unreachable; Commit is retried in the background", self.entry.order_id)
            self.mgr.spawn(self._commit_later(), f"commit-{self.entry.order_id}")

    async def _commit_later(self) -> None:
        while True:
            try:
                await self._call("Commit", pb.CommitRequest(order_id=self.entry.order_id), CONTROL_TIMEOUT_SECONDS,
                                 retry_until=self.mgr.clock() + 30.0)  # fmt: skip
                return
            except PeerRefused as exc:
                log.error("order %s: the target refused Commit: %s", self.entry.order_id, exc)
                return
            except PeerUnreachable:
                await asyncio.sleep(1.0)

    async def _remove_source(self) -> None:
        for attempt in range(1, 4):
            try:
                await self.driver.migrate_out_remove(self.wid)
                return
            except UnknownWorkload:
                return
            except DriverError as exc:
                log.error(
                    "order %s: removing the source instance failed (try %d): %s", self.entry.order_id, attempt, exc
                )
                await asyncio.sleep(0.5 * attempt)

    # ---- rollback ------------------------------------------------------------------------

    async def _rollback(self, state: str, code: str, message: str) -> None:
        entry = self.entry
        if entry.phase == "rolling_back":
            needs_ack = bool(entry.extra.get("needs_ack"))
        else:
            needs_ack = entry.phase == "switching" or await self._handed_over()
            extra = {**entry.extra, "needs_ack": needs_ack, "final_state": state}
            self.journal("rolling_back", error={"code": code, "message": message[:4000]}, extra=extra)
        reason = pb.MigrationError(code=code, message=message[:4000])
        if needs_ack:
            await self._abort_target(reason, forever=True)
        else:
            self.mgr.spawn(self._abort_target(reason, forever=False), f"abort-{entry.order_id}")
        await self._resume_source()
        step = self.step(state, error=(code, message[:4000]), message=message[:4000])
        self.journal(state, step)
        self.run_.publish(step)
        self._observe(step)
        log.info("order %s: %s (%s: %s)", entry.order_id, state, code, message)

    async def _handed_over(self) -> bool:
        try:
            return await self.driver.migrate_out_handed_over(self.wid)
        except UnknownWorkload:
            return False
        except DriverError as exc:
            log.warning("order %s: cannot tell whether the runtime handed over: %s", self.entry.order_id, exc)
            return True  # the safe answer: wait for the target's abort

    async def _abort_target(self, reason: pb.MigrationError, *, forever: bool) -> None:
        request = pb.AbortRequest(order_id=self.entry.order_id, reason=reason)
        give_up = self.mgr.clock() + ABORT_BACKGROUND_SECONDS
        while True:
            try:
                await self._call("Abort", request, CONTROL_TIMEOUT_SECONDS, retry_until=self.mgr.clock() + 30.0)
                return
            except PeerRefused as exc:
                log.error("order %s: the target refused Abort: %s", self.entry.order_id, exc)
                if forever:
                    raise
                return
            except PeerUnreachable:
                if not forever and self.mgr.clock() > give_up:
                    log.warning("order %s: target unreachable; its reservation lapses by itself", self.entry.order_id)
                    return
                await asyncio.sleep(1.0)

    async def _resume_source(self) -> None:
        spec = WorkloadSpec.from_dict(self.entry.spec)
        for attempt in range(1, 4):
            try:
                await self.driver.migrate_out_rollback(self.wid, spec)
                return
            except DriverError as exc:
                log.error("order %s: resuming the source failed (try %d): %s", self.entry.order_id, attempt, exc)
                await asyncio.sleep(0.5 * attempt)

    # ---- recovery ------------------------------------------------------------------------

    async def resume(self) -> None:
        """Continue an order found in the journal after a restart (see the module docstring)."""
        entry = self.entry
        phase = entry.phase
        log.info("order %s: recovering from phase %s", entry.order_id, phase)
        if entry.last_progress:
            self.run_.publish(progress_from_dict(entry.last_progress))
        else:
            self.emit({"committing": "switching", "rolling_back": "switching"}.get(phase, phase))
        if phase in ("preparing", "transferring"):
            await self._rollback("rolled_back", "source_restarted", f"the source executor restarted while {phase}")
        elif phase == "switching":
            status = await self._target_status()
            if status is not None and status.phase in ("switched", "committed"):
                last = status.last_progress
                await self._decide_commit(
                    endpoint=last.workload_endpoint or str(entry.extra.get("workload_endpoint", "")),
                    downtime=last.downtime_seconds if last.HasField("downtime_seconds") else 0.0,
                    transferred=int(entry.extra.get("transferred_bytes") or 0),
                    message="finished after the source executor restarted",
                )
            else:
                await self._rollback("rolled_back", "source_restarted", "the source executor restarted while switching")
        elif phase == "committing":
            await self._finish()
        elif phase == "rolling_back":
            error = entry.error or {"code": "source_restarted", "message": "rolled back after a restart"}
            await self._rollback(str(entry.extra.get("final_state") or "rolled_back"), error["code"], error["message"])

    async def _target_status(self) -> pb.MigrationStatusResponse | None:
        """The target's journal entry; waits while the target is unreachable. None: it never knew."""
        request = pb.MigrationStatusRequest(order_id=self.entry.order_id)
        while True:
            try:
                return await self._call("MigrationStatus", request, CONTROL_TIMEOUT_SECONDS,
                                        retry_until=self.mgr.clock() + 30.0)  # fmt: skip
            except PeerRefused as exc:
                if exc.code == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            except PeerUnreachable:
                log.warning("order %s: target %s unreachable; asking again", self.entry.order_id, self.target)
                await asyncio.sleep(1.0)
