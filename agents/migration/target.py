"""The target side of a migration: PrepareIncoming, Transfer, Switch, Commit, Abort.

The target never decides the outcome; the source does (its journal's ``committing`` is the
commit point). The target therefore:

* aborts on its own only while nothing it did can be in use: before ``switched`` — when its
  reservation expires (``reserved_until_at``) or when it restarts after a crash;
* once ``switched`` (its instance runs and the source was told so) waits for the source's word —
  Commit or Abort, or after a restart the source's journal read through MigrationStatus;
* refuses a Switch after it aborted, so a source that reaches Switch late rolls back.

Every phase is journaled before the target acts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from agents.drivers.base import (
    AlreadyExists,
    Driver,
    DriverError,
    DriverUnavailable,
    InvalidSpec,
    MigrationUnsupported,
    UnknownWorkload,
    WorkloadSpec,
)
from agents.executor_wire import spec_from_proto
from agents.journal import JournalEntry, JournalError, check_order_id
from agents.migration.peer import PeerError, PeerRefused
from agents.migration.progress import progress_to_dict
from agents.migration.snapshot import SnapshotReceiver, TransferRefused, fsync_tree
from schemas import executor_pb2 as pb

if TYPE_CHECKING:
    from agents.migration.manager import MigrationManager

log = logging.getLogger(__name__)

BEFORE_SWITCH = ("prepared", "transferring", "transferred")
WATCH_INTERVAL_SECONDS = 1.0
SOURCE_DECIDED_COMMIT = ("committing", "completed")
SOURCE_DECIDED_ROLLBACK = ("rolling_back", "rolled_back", "failed", "rejected", "expired")


class WrongPhase(DriverError):
    """The order is not in a phase that allows the call (e.g. Switch after an abort)."""

    code = "failed_precondition"


class UnknownOrder(DriverError):
    code = "not_found"


class OrderAborted(DriverError):
    """The order was aborted on this node (by the source, its reservation's end or a restart)."""

    code = "aborted"


@dataclass
class Incoming:
    """An incoming order this process knows about (in memory, beside its journal entry)."""

    entry: JournalEntry
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    receiver: SnapshotReceiver | None = None
    timer: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    response: pb.PrepareIncomingResponse | None = None


class TargetSide:
    """The target role of one executor; see the module docstring."""

    def __init__(self, mgr: MigrationManager) -> None:
        self.mgr = mgr
        self.incoming: dict[str, Incoming] = {}

    # ---- helpers ---------------------------------------------------------------------------

    def _driver(self, entry: JournalEntry) -> Driver:
        return self.mgr.node.driver(entry.driver)

    def _spec(self, entry: JournalEntry) -> WorkloadSpec:
        return WorkloadSpec.from_dict(entry.spec)

    def _staging(self, entry: JournalEntry) -> Path:
        return self._driver(entry).migrate_in_staging(entry.workload_id, entry.order_id)

    def _get(self, order_id: str) -> Incoming:
        check_order_id(order_id)
        found = self.incoming.get(order_id)
        if found is not None:
            return found
        entry = self.mgr.journal.get(order_id)
        if entry is None or entry.role != "target":
            raise UnknownOrder(f"no incoming order {order_id!r} on node {self.mgr.node.node_id}")
        found = self.incoming[order_id] = Incoming(entry)
        return found

    # ---- PrepareIncoming -------------------------------------------------------------------

    async def prepare(self, request: pb.PrepareIncomingRequest) -> pb.PrepareIncomingResponse:
        order = request.order
        try:
            check_order_id(order.order_id)
        except JournalError as exc:
            raise InvalidSpec(f"order.order_id: {exc}") from exc
        node = self.mgr.node
        spec = spec_from_proto(
            request.spec if request.HasField("spec") else None, lambda d: node.driver(d).kind, field="spec"
        )
        if order.workload_id and order.workload_id != spec.workload_id:
            raise InvalidSpec(f"order.workload_id {order.workload_id!r} differs from spec.workload_id")
        known = self.incoming.get(order.order_id)
        entry = known.entry if known else self.mgr.journal.get(order.order_id)
        if entry is not None:
            return await self._prepare_again(entry, spec)
        now = self.mgr.clock()
        if order.deadline_at and now > order.deadline_at:
            raise WrongPhase(f"order {order.order_id} is past its deadline ({now - order.deadline_at:.1f} s ago)")
        driver = node.driver(spec.driver)  # InvalidSpec / DriverUnavailable (not enabled here)
        if not driver.migration_method:
            raise MigrationUnsupported(f"driver {driver.name} on node {node.node_id} cannot receive migrations")
        if not driver.accepts(spec.kind):
            raise DriverUnavailable(f"driver {driver.name} on node {node.node_id} does not host kind {spec.kind}")
        if order.kind and order.kind != spec.kind:
            raise InvalidSpec(f"order.kind {order.kind!r} differs from the workload's kind {spec.kind!r}")
        with contextlib.suppress(UnknownWorkload):
            info = node.workload(spec.workload_id)
            raise AlreadyExists(f"workload {spec.workload_id!r} already runs on node {node.node_id} ({info.state})")
        busy = self.mgr.journal.active_for(spec.workload_id, "target")
        if busy is not None:
            raise AlreadyExists(f"workload {spec.workload_id!r} is already arriving here with order {busy.order_id}")
        node.reserve(order.order_id, spec)  # InsufficientCapacity
        reserved_until = order.deadline_at or now + 600.0
        entry = self.mgr.journal.create(
            order.order_id,
            spec.workload_id,
            "target",
            "prepared",
            driver=spec.driver,
            method=driver.migration_method,
            order=json_format.MessageToDict(order, preserving_proto_field_name=True),
            spec=spec.to_dict(),
            peer_endpoint=request.source_endpoint,
            extra={"reserved_until_at": reserved_until},
        )
        incoming = self.incoming[order.order_id] = Incoming(entry)
        async with incoming.lock:
            try:
                self.mgr.journal.write(entry)  # write-ahead: the driver acts after this
                staging = self._staging(entry)
                plan = await driver.migrate_in_prepare(spec, staging)
            except BaseException:
                await self._abort_local(incoming, "prepare_failed", "the target could not prepare", quiet=True)
                raise
            # The plan stays in memory: a restarted target aborts what it prepared, it never resumes it.
            entry.extra.update(incoming_uri=plan.incoming_uri, params=plan.params)
            self.mgr.crash.reach("target", "prepare")
            incoming.response = pb.PrepareIncomingResponse(
                order_id=order.order_id,
                incoming_uri=plan.incoming_uri,
                reserved_until_at=reserved_until,
                params=plan.params,
            )
            incoming.timer = self.mgr.spawn(self._expire(incoming, reserved_until), f"reservation-{order.order_id}")
        log.info(
            "order %s: prepared to receive %s workload %s from %s (reserved until %.0f)",
            order.order_id, spec.driver, spec.workload_id, request.source_endpoint or "?", reserved_until,
        )  # fmt: skip
        return incoming.response

    async def _prepare_again(self, entry: JournalEntry, spec: WorkloadSpec) -> pb.PrepareIncomingResponse:
        """A repeated PrepareIncoming (the source retried): the same answer, or why not."""
        if entry.role != "target":
            raise WrongPhase(f"order {entry.order_id} is this node's outgoing order, not an incoming one")
        if entry.phase == "aborted":
            raise OrderAborted(f"order {entry.order_id} was aborted on node {self.mgr.node.node_id}: {entry.error}")
        if entry.phase not in BEFORE_SWITCH:
            raise WrongPhase(f"order {entry.order_id} is {entry.phase} on node {self.mgr.node.node_id}")
        if entry.workload_id != spec.workload_id:
            raise InvalidSpec(f"order {entry.order_id} moves workload {entry.workload_id!r}, not {spec.workload_id!r}")
        incoming = self._get(entry.order_id)
        async with incoming.lock:
            if entry.phase not in BEFORE_SWITCH:
                raise WrongPhase(f"order {entry.order_id} is {entry.phase} on node {self.mgr.node.node_id}")
            return incoming.response or pb.PrepareIncomingResponse(
                order_id=entry.order_id,
                incoming_uri=str(entry.extra.get("incoming_uri", "")),
                reserved_until_at=float(entry.extra.get("reserved_until_at", 0.0)),
                params=dict(entry.extra.get("params") or {}),
            )

    async def _expire(self, incoming: Incoming, until: float) -> None:
        await asyncio.sleep(max(0.0, until - self.mgr.clock()))
        async with incoming.lock:
            if incoming.entry.phase in (*BEFORE_SWITCH, "switching"):
                log.warning("order %s: no switch before the reservation ended: aborting", incoming.entry.order_id)
                incoming.timer = None  # this task: do not cancel it from inside
                await self._abort_local(incoming, "reservation_expired", "the reservation ended before the switch")

    # ---- Transfer --------------------------------------------------------------------------

    async def transfer(self, chunks: AsyncIterator[pb.TransferChunk]) -> pb.TransferResponse:
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            raise TransferRefused("an empty Transfer: send at least one chunk") from None
        incoming = self._get(first.order_id)

        async def stream() -> AsyncIterator[pb.TransferChunk]:
            yield first
            async for chunk in chunks:
                yield chunk

        async with incoming.lock:
            entry = incoming.entry
            if entry.phase == "aborted":
                raise OrderAborted(f"order {entry.order_id} was aborted on node {self.mgr.node.node_id}")
            if entry.phase not in BEFORE_SWITCH:
                raise WrongPhase(f"order {entry.order_id} is {entry.phase}: no transfer accepted now")
            staging = self._staging(entry)
            staging.mkdir(parents=True, exist_ok=True)
            if incoming.receiver is None:
                incoming.receiver = SnapshotReceiver(staging)
            first_call = entry.phase == "prepared"
            if first_call:
                self.mgr.journal.write(entry, "transferring")
            reply = await incoming.receiver.receive(
                entry.order_id, stream(), on_first=lambda: self.mgr.crash.reach("target", "transfer")
            )
            if first_call:
                await asyncio.to_thread(fsync_tree, staging)
                await self._driver(entry).migrate_in_received(entry.workload_id, staging)
                self.mgr.journal.write(entry, "transferred")
            return reply

    # ---- Switch ----------------------------------------------------------------------------

    async def switch(self, request: pb.SwitchRequest) -> pb.SwitchResponse:
        incoming = self._get(request.order_id)
        async with incoming.lock:
            entry = incoming.entry
            if entry.phase == "switched":
                return self._switch_response(entry)
            if entry.phase == "aborted":
                raise OrderAborted(f"order {entry.order_id} was aborted on node {self.mgr.node.node_id}")
            if entry.phase not in (*BEFORE_SWITCH, "switching"):
                raise WrongPhase(f"order {entry.order_id} is {entry.phase} on node {self.mgr.node.node_id}: no switch")
            driver, spec, staging = self._driver(entry), self._spec(entry), self._staging(entry)
            if request.files:
                if incoming.receiver is None:
                    raise WrongPhase(f"order {entry.order_id}: no snapshot arrived here (restarted since?)")
                size = await asyncio.to_thread(incoming.receiver.verify, request.files)
                log.info("order %s: %d files, %d bytes verified against the source's manifest",
                         entry.order_id, len(request.files), size)  # fmt: skip
            # No write-ahead record here: it would sit inside the downtime, and a restart before
            # "switched" aborts (stopping an instance this switch may have started) anyway.
            info = await driver.migrate_in_switch(spec, staging)
            ready_at = self.mgr.clock()
            self.mgr.node.release(entry.order_id)  # the reservation is a running workload now
            downtime = max(0.0, ready_at - request.quiesced_at) if request.quiesced_at else None
            step = pb.MigrationProgress(
                order_id=entry.order_id,
                workload_id=entry.workload_id,
                state="switching",
                at=ready_at,
                target_node=self.mgr.node.node_id,
                driver=entry.driver,
                method=entry.method,
                workload_endpoint=info.endpoint,
            )
            if downtime is not None:
                step.downtime_seconds = downtime
            if incoming.timer is not None:
                incoming.timer.cancel()
                incoming.timer = None
            self.mgr.journal.write(
                entry,
                "switched",
                last_progress=progress_to_dict(step),
                extra={**entry.extra, "ready_at": ready_at, "workload_endpoint": info.endpoint},
            )
            self.mgr.crash.reach("target", "switch")
            log.info(
                "order %s: %s runs here now (%s)", entry.order_id, entry.workload_id, info.endpoint or "no endpoint"
            )
            return self._switch_response(entry)

    @staticmethod
    def _switch_response(entry: JournalEntry) -> pb.SwitchResponse:
        return pb.SwitchResponse(
            order_id=entry.order_id,
            workload_endpoint=str(entry.extra.get("workload_endpoint", "")),
            ready_at=float(entry.extra.get("ready_at", 0.0)),
        )

    # ---- Commit / Abort --------------------------------------------------------------------

    async def commit(self, request: pb.CommitRequest) -> pb.CommitResponse:
        incoming = self._get(request.order_id)
        async with incoming.lock:
            entry = incoming.entry
            if entry.phase != "committed":
                if entry.phase != "switched":
                    raise WrongPhase(f"order {entry.order_id} is {entry.phase} here, not switched: cannot commit")
                self.mgr.crash.reach("target", "commit")
                await self._commit_local(incoming)
        return pb.CommitResponse(order_id=request.order_id, state="committed")

    async def _commit_local(self, incoming: Incoming) -> None:
        entry = incoming.entry
        self.mgr.journal.write(entry, "committed")
        with contextlib.suppress(DriverError, OSError):
            await self._driver(entry).migrate_in_commit(entry.workload_id, self._staging(entry))
        self._forget(incoming)
        log.info("order %s: committed; %s stays here", entry.order_id, entry.workload_id)

    async def abort(self, request: pb.AbortRequest) -> pb.AbortResponse:
        check_order_id(request.order_id)
        reason = (request.reason.code or "aborted_by_source", request.reason.message or "the source aborted the move")
        known = self.mgr.journal.get(request.order_id)
        if known is not None and known.role != "target":
            raise WrongPhase(f"order {request.order_id} is this node's outgoing order, not an incoming one")
        try:
            incoming = self._get(request.order_id)
        except UnknownOrder:
            # Never prepared here (or its PrepareIncoming is still on the way): leave a tombstone
            # so that a late PrepareIncoming for this order is refused.
            entry = self.mgr.journal.create(request.order_id, "", "target", "aborted", error=_error(*reason))
            self.mgr.journal.write(entry)
            return pb.AbortResponse(order_id=request.order_id, state="aborted")
        async with incoming.lock:
            entry = incoming.entry
            if entry.phase == "committed":
                raise WrongPhase(f"order {entry.order_id} is already committed on node {self.mgr.node.node_id}")
            if entry.phase != "aborted":
                await self._abort_local(incoming, *reason)
        return pb.AbortResponse(order_id=request.order_id, state="aborted")

    async def _abort_local(self, incoming: Incoming, code: str, message: str, *, quiet: bool = False) -> None:
        """Discard the incoming instance and reservation; journal ``aborted`` once that is done."""
        entry = incoming.entry
        if entry.phase == "aborted":
            return
        if entry.workload_id and entry.driver:
            try:
                await self._driver(entry).migrate_in_abort(entry.workload_id, self._staging(entry))
            except DriverError:
                if not quiet:
                    raise
                log.exception("order %s: could not discard the incoming instance", entry.order_id)
        self.mgr.node.release(entry.order_id)
        self.mgr.journal.write(entry, "aborted", error=_error(code, message))
        self._forget(incoming)
        log.info("order %s: aborted on the target (%s: %s)", entry.order_id, code, message)

    def _forget(self, incoming: Incoming) -> None:
        current = asyncio.current_task()
        for task in (incoming.timer, incoming.watcher):
            if task is not None and task is not current:
                task.cancel()
        incoming.timer = incoming.watcher = None
        incoming.receiver = None
        self.incoming.pop(incoming.entry.order_id, None)

    # ---- recovery --------------------------------------------------------------------------

    async def recover(self) -> None:
        """After a restart: abort what never switched; wait for the source's word on the rest."""
        for entry in self.mgr.journal.in_flight("target"):
            incoming = self._get(entry.order_id)
            if entry.phase in (*BEFORE_SWITCH, "switching"):
                # No Switch answer left this node for these phases: the source cannot have committed.
                async with incoming.lock:
                    await self._abort_local(
                        incoming, "target_restarted", f"the target restarted while {entry.phase}", quiet=True
                    )
            elif entry.phase == "switched":
                await self._ensure_running(entry)
                incoming.watcher = self.mgr.spawn(self._await_decision(incoming), f"decision-{entry.order_id}")

    async def _ensure_running(self, entry: JournalEntry) -> None:
        """The switched instance must run until the source decides (function pools die with the node)."""
        try:
            info = self.mgr.node.workload(entry.workload_id)
            if info.state in ("running", "starting", "migrating"):
                return
        except UnknownWorkload:
            pass
        log.warning(
            "order %s: the switched instance of %s is not running: starting it again", entry.order_id, entry.workload_id
        )
        try:
            await self._driver(entry).migrate_in_switch(self._spec(entry), self._staging(entry))
        except DriverError:
            log.exception("order %s: cannot start the switched instance again", entry.order_id)

    async def _await_decision(self, incoming: Incoming) -> None:
        """Ask the source until it has decided; then commit or abort here."""
        entry = incoming.entry
        while entry.phase == "switched":
            decided = await self._source_phase(entry)
            async with incoming.lock:
                if entry.phase != "switched":
                    return
                if decided in SOURCE_DECIDED_COMMIT:
                    incoming.watcher = None
                    await self._commit_local(incoming)
                    return
                if decided in SOURCE_DECIDED_ROLLBACK:
                    incoming.watcher = None
                    await self._abort_local(
                        incoming, "source_rolled_back", f"the source's journal says {decided}", quiet=True
                    )
                    return
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    async def _source_phase(self, entry: JournalEntry) -> str | None:
        if not entry.peer_endpoint:
            return None
        try:
            reply = await self.mgr.peers.call(
                entry.peer_endpoint,
                "MigrationStatus",
                pb.MigrationStatusRequest(order_id=entry.order_id),
                timeout=5.0,
                node_id=str(entry.order.get("source_node", "")),
            )
        except PeerRefused as exc:
            log.warning("order %s: the source does not know it (%s); keeping the instance", entry.order_id, exc.details)
            return None
        except PeerError:
            return None
        return str(reply.phase)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}
