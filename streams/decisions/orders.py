"""Migration orders and the decision that carries them; dicts match the orders topic contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.decisions.explain import Explanation

__all__ = ["MODES", "REASON_CODES", "Decision", "Order", "Reason"]

MODES = ("enforce", "recommend", "shadow")
REASON_CODES = (
    "predicted_overload",  # a node's forecast upper bound breaches its threshold within the lead time
    "declared_peak",  # the same, caused by a declared event window (ingestion peak…)
    "maintenance_evacuation",  # the node enters a maintenance window
    "swap",  # two-way swap when no one-way move fits
    "current_overload",  # reactive baseline: utilisation is over the threshold now
)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an order exists: what breaches, when, by how much, and the lead time used."""

    code: str
    resource: str | None = None
    predicted_breach_at: float | None = None
    predicted_peak_ratio: float | None = None
    threshold_ratio: float | None = None
    lead_time_seconds: float | None = None
    message: str = ""
    current_ratio: float | None = None
    event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "resource": self.resource,
            "predicted_breach_at": self.predicted_breach_at,
            "predicted_peak_ratio": _round(self.predicted_peak_ratio),
            "threshold_ratio": _round(self.threshold_ratio),
            "current_ratio": _round(self.current_ratio),
            "lead_time_seconds": _round(self.lead_time_seconds),
            "message": self.message,
        }
        if self.event_id is not None:
            out["event_id"] = self.event_id
        return out


@dataclass(frozen=True, slots=True)
class Order:
    """A migration order: move ``workload_id`` from ``source_node`` to ``target_node``.

    ``predicted_duration_seconds`` / ``predicted_downtime_seconds`` come from the migration model
    (``expected_seconds`` / ``expected_downtime_seconds`` in the record); ``sla_tier`` is kept for
    disruption budgets and is not part of the record. A swap names its other half in
    ``swap_with`` (order id) and ``swap_with_workload``.
    """

    order_id: str
    workload_id: str
    kind: str
    source_node: str
    target_node: str
    method: str
    reason: Reason
    issued_at: float
    deadline_at: float
    dry_run: bool
    mode: str
    pool: str
    sla_tier: str = "default"
    swap_with: str | None = None
    swap_with_workload: str | None = None
    predicted_duration_seconds: float = 0.0
    predicted_downtime_seconds: float = 0.0
    policy: str = "predictive"
    priority: int = 0
    memory_bytes: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The ``plba.orders.v1`` record (``schemas/json/order.schema.json``)."""
        out: dict[str, Any] = {
            "schema_version": 1,
            "order_id": self.order_id,
            "workload_id": self.workload_id,
            "kind": self.kind,
            "source_node": self.source_node,
            "target_node": self.target_node,
            "method": self.method,
            "reason": self.reason.to_dict(),
            "issued_at": self.issued_at,
            "deadline_at": self.deadline_at,
            "dry_run": self.dry_run,
            "mode": self.mode,
            "pool": self.pool,
            "policy": self.policy,
            "priority": self.priority,
            "mem_bytes": int(self.memory_bytes),
            "expected_seconds": round(self.predicted_duration_seconds, 6),
            "expected_downtime_seconds": round(self.predicted_downtime_seconds, 6),
        }
        if self.swap_with is not None:
            out["swap_with"] = {"order_id": self.swap_with, "workload_id": self.swap_with_workload or ""}
        return out

    def to_state(self) -> dict[str, Any]:
        """Every field, JSON-safe, for :meth:`from_state` (policy state snapshots)."""
        out = {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]
        out["reason"] = {f: getattr(self.reason, f) for f in self.reason.__slots__}  # type: ignore[attr-defined]
        return out

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Order:
        return cls(**{**data, "reason": Reason(**data["reason"])})


@dataclass(slots=True)
class Decision:
    """The result of one decision cycle.

    ``expired`` lists the ids of this policy's in-flight orders that passed their deadline without
    completing (stale orders); the shell publishes them as ``expired`` on the migrations topic.
    """

    orders: list[Order] = field(default_factory=list)
    explanations: list[Explanation] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
