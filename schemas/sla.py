"""Resolving the effective SLA of a workload from the policies topic (shared contract logic).

Both sides need it: ``plba sla get`` shows what applies to a workload, and the decision processor
uses it to rank candidates. Precedence: **workload > app > user > default**, field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class EffectivePolicy:
    priority: int = 50
    tier: str = "default"
    max_downtime_seconds: float | None = None
    migratable: bool = True
    pin_node: str | None = None


def resolve_policy(
    policies: Mapping[tuple[str, str], Mapping[str, Any]], workload_id: str, app: str, user: str
) -> EffectivePolicy:
    """The effective SLA of a workload: precedence workload > app > user > default.

    Each field comes from the most specific policy that sets it, so an app-wide tier and a
    workload-specific priority combine.
    """
    layers = [
        policies.get(("workload", workload_id)),
        policies.get(("app", app)) if app else None,
        policies.get(("user", user)) if user else None,
        policies.get(("default", "default")),
    ]
    eff = EffectivePolicy()
    for key, attr in (
        ("priority", "priority"),
        ("tier", "tier"),
        ("max_downtime_seconds", "max_downtime_seconds"),
        ("migratable", "migratable"),
        ("pin_node", "pin_node"),
    ):
        for layer in layers:
            if layer is not None and layer.get(key) is not None:
                setattr(eff, attr, layer[key])
                break
    return eff
