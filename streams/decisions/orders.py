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

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "resource": self.resource,
            "predicted_breach_at": self.predicted_breach_at,
            "predicted_peak_ratio": _round(self.predicted_peak_ratio),
            "threshold_ratio": _round(self.threshold_ratio),
            "lead_time_seconds": _round(self.lead_time_seconds),
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Order:
    """A migration order: move ``workload_id`` from ``source_node`` to ``target_node``.

    ``predicted_duration_seconds`` and ``predicted_downtime_seconds`` come from the migration
    model and are kept for the replay and the metrics; they are not part of the topic record.
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
    predicted_duration_seconds: float = 0.0
    predicted_downtime_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The ``plba.orders.v1`` record."""
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
        }
        if self.swap_with is not None:
            out["swap_with"] = self.swap_with
        return out

    def to_state(self) -> dict[str, Any]:
        """The record plus the fields kept only in policy state (for :meth:`from_state`)."""
        return {
            **self.to_dict(),
            "sla_tier": self.sla_tier,
            "predicted_duration_seconds": self.predicted_duration_seconds,
            "predicted_downtime_seconds": self.predicted_downtime_seconds,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Order:
        fields = {k: v for k, v in data.items() if k not in ("schema_version", "reason")}
        return cls(reason=Reason(**data["reason"]), **fields)


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
