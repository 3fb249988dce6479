"""The dispatcher's pure core: which orders to carry out, and the records their outcome makes.

Orders are idempotent by ``order_id``. The book remembers every order it has seen reach a
terminal state (bounded, oldest forgotten first), so a redelivered order is answered from the
book instead of being executed again; the executors are idempotent by ``order_id`` as well (their
journal), which covers a dispatcher restart that lost the book.

Orders for one workload are carried out in sequence (the processor holds a lock per workload),
and an order issued before one the book has already admitted for the same workload is
superseded: the newer order was decided on a fresher view, so the older one must never move the
workload after it (or back).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"completed", "failed", "rolled_back", "rejected", "expired"})

RUN, DUPLICATE, EXPIRED, DRY_RUN, IN_PROGRESS = "run", "duplicate", "expired", "dry_run", "in_progress"
SUPERSEDED = "superseded"


@dataclass
class DispatchBook:
    capacity: int = 100_000
    finished: OrderedDict[str, str] = field(default_factory=OrderedDict)  # order_id -> terminal state
    running: set[str] = field(default_factory=set)
    # workload_id -> issued_at of the newest order admitted for it (bounded like ``finished``)
    newest: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def admit(self, order: Mapping[str, Any], now: float) -> str:
        """What to do with an order that arrives at ``now``."""
        oid = order["order_id"]
        if oid in self.finished:
            return DUPLICATE
        if oid in self.running:
            return IN_PROGRESS
        if order.get("dry_run"):
            return DRY_RUN
        if now > float(order["deadline_at"]):
            return EXPIRED
        workload, issued = order["workload_id"], float(order["issued_at"])
        if issued < self.newest.get(workload, float("-inf")):
            return SUPERSEDED
        self.newest[workload] = issued
        self.newest.move_to_end(workload)
        while len(self.newest) > self.capacity:
            self.newest.popitem(last=False)
        self.running.add(oid)
        return RUN

    def finish(self, order_id: str, state: str) -> None:
        self.running.discard(order_id)
        self.finished[order_id] = state
        self.finished.move_to_end(order_id)
        while len(self.finished) > self.capacity:
            self.finished.popitem(last=False)

    def release(self, order_id: str) -> None:
        """Forget an order that did not reach a terminal state (the worker is stopping)."""
        self.running.discard(order_id)


def status_record(
    order: Mapping[str, Any],
    state: str,
    at: float,
    *,
    attempt: int = 1,
    error: tuple[str, str] | None = None,
    message: str = "",
    driver: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``migrations.v1`` record about ``order``."""
    rec: dict[str, Any] = {
        "schema_version": 1,
        "order_id": order["order_id"],
        "workload_id": order["workload_id"],
        "state": state,
        "at": at,
        "source_node": order["source_node"],
        "target_node": order["target_node"],
        "method": order["method"],
        "attempt": attempt,
        "dry_run": bool(order.get("dry_run", False)),
    }
    if driver:
        rec["driver"] = driver
    if error is not None:
        rec["error"] = {"code": error[0], "message": error[1][:4000]}
    if message:
        rec["message"] = message[:4000]
    if extra:
        rec.update({k: v for k, v in extra.items() if v is not None})
    return rec


def progress_record(order: Mapping[str, Any], progress: Any, attempt: int) -> dict[str, Any]:
    """A ``migrations.v1`` record from an executor's ``MigrationProgress`` message."""
    extra: dict[str, Any] = {"progress_ratio": min(1.0, max(0.0, progress.progress_ratio))}
    for name in ("downtime_seconds", "transferred_bytes", "total_seconds"):
        if progress.HasField(name):
            extra[name] = getattr(progress, name)
    error = (progress.error.code, progress.error.message) if progress.error.code else None
    return status_record(
        order,
        progress.state,
        progress.at,
        attempt=attempt,
        error=error,
        message=progress.message,
        driver=progress.driver or None,
        extra=extra,
    )


def placement_record(order: Mapping[str, Any], progress: Any, at: float) -> dict[str, Any]:
    """The routing-table entry after a completed migration."""
    return {
        "schema_version": 1,
        "workload_id": order["workload_id"],
        "node_id": order["target_node"],
        "endpoint": progress.workload_endpoint or None,
        "kind": order["kind"],
        "driver": progress.driver or "unknown",
        "updated_at": at,
        "order_id": order["order_id"],
    }
