"""Explanation records: why a hot node got an order, or why it was left alone.

Every non-decision on a hot node yields one, listing the candidates considered and the constraint
that excluded each, and the targets considered and why each was refused (ARCHITECTURE §6.9).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CANDIDATE_EXCLUSIONS", "TARGET_EXCLUSIONS", "CandidateNote", "Explanation", "TargetNote"]

CANDIDATE_EXCLUSIONS = (
    "not_migratable",
    "pinned",
    "in_flight",
    "cooldown",
    "sla_downtime",
    "tier_budget",
    "does_not_resolve",
    "no_target",
)
TARGET_EXCLUSIONS = (
    "same_node",
    "incompatible",
    "maintenance",
    "hot",
    "node_limit",
    "ping_pong",
    "would_overload",
)


@dataclass(frozen=True, slots=True)
class CandidateNote:
    workload_id: str
    excluded_by: str | None  # None: chosen
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"workload_id": self.workload_id, "excluded_by": self.excluded_by, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class TargetNote:
    node_id: str
    excluded_by: str | None  # None: chosen
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "excluded_by": self.excluded_by, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Explanation:
    """One record of the explanations topic. ``decision`` is ``acted`` or ``no_action``."""

    node_id: str
    at: float
    decision: str
    reason: str
    resource: str | None = None
    candidates: tuple[CandidateNote, ...] = field(default_factory=tuple)
    targets: tuple[TargetNote, ...] = field(default_factory=tuple)
    message: str = ""
    pool: str | None = None
    policy: str = "predictive"
    mode: str = "enforce"
    predicted_breach_at: float | None = None
    predicted_peak_ratio: float | None = None
    threshold_ratio: float | None = None
    order_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``plba.explanations.v1`` record (``schemas/json/explanation.schema.json``)."""
        out: dict[str, Any] = {
            "schema_version": 1,
            "node_id": self.node_id,
            "at": self.at,
            "decision": self.decision,
            "reason": self.reason,
            "resource": self.resource,
            "message": self.message,
            "policy": self.policy,
            "mode": self.mode,
            "predicted_breach_at": self.predicted_breach_at,
            "predicted_peak_ratio": None if self.predicted_peak_ratio is None else round(self.predicted_peak_ratio, 6),
            "threshold_ratio": None if self.threshold_ratio is None else round(self.threshold_ratio, 6),
            "order_ids": list(self.order_ids),
            "candidates": [c.to_dict() for c in self.candidates],
            "targets": [t.to_dict() for t in self.targets],
        }
        if self.pool is not None:
            out["pool"] = self.pool
        return out
