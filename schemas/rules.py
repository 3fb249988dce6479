"""Contract rules that JSON Schema cannot express: relations between fields of one record.

They run after the schema has accepted the record (so the fields exist and have their types),
in the codec and in ``plba schemas validate``. Each schema's ``description`` names its rules, so
third parties validating with the JSON Schema alone know what else is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from schemas.errors import Violation

Rule = Callable[[Mapping[str, Any]], list[Violation]]


def _node_usage(r: Mapping[str, Any]) -> list[Violation]:
    if r["mem_used_bytes"] > r["mem_total_bytes"]:
        return [Violation("$.mem_used_bytes", f"{r['mem_used_bytes']} exceeds mem_total_bytes {r['mem_total_bytes']}")]
    return []


def _event(r: Mapping[str, Any]) -> list[Violation]:
    if r["ends_at"] <= r["starts_at"]:
        return [Violation("$.ends_at", f"ends_at {r['ends_at']} is not after starts_at {r['starts_at']}")]
    return []


def _forecast(r: Mapping[str, Any]) -> list[Violation]:
    out = []
    horizons = r["horizons_seconds"]
    n = len(horizons)
    for name in ("mean", "lower", "upper"):
        if len(r[name]) != n:
            out.append(Violation(f"$.{name}", f"has {len(r[name])} values for {n} horizons"))
    for i in range(1, n):
        if horizons[i] <= horizons[i - 1]:
            out.append(Violation(f"$.horizons_seconds[{i}]", "horizons must strictly increase"))
            break
    if not out:
        # The interval is calibrated on its own misses; when the point forecast is biased (a lagged
        # trend) the calibrated interval may leave the mean outside it. Only its own order is a rule.
        for i, (lo, hi) in enumerate(zip(r["lower"], r["upper"], strict=True)):
            if not lo <= hi:
                out.append(Violation(f"$.upper[{i}]", f"lower <= upper fails: {lo} <= {hi}"))
                break
    if r["subject_kind"] == "node" and r["subject"] != r["node_id"]:
        out.append(Violation("$.node_id", "a node forecast's node_id must equal its subject"))
    return out


def _order(r: Mapping[str, Any]) -> list[Violation]:
    out = []
    if r["target_node"] == r["source_node"]:
        out.append(Violation("$.target_node", "target_node equals source_node"))
    if r["deadline_at"] <= r["issued_at"]:
        out.append(
            Violation("$.deadline_at", f"deadline_at {r['deadline_at']} is not after issued_at {r['issued_at']}")
        )
    swap = r.get("swap_with")
    if swap is not None and swap["workload_id"] == r["workload_id"]:
        out.append(Violation("$.swap_with.workload_id", "a workload cannot be swapped with itself"))
    return out


def _migration_status(r: Mapping[str, Any]) -> list[Violation]:
    if r["target_node"] == r["source_node"]:
        return [Violation("$.target_node", "target_node equals source_node")]
    return []


def _explanation(r: Mapping[str, Any]) -> list[Violation]:
    if r["decision"] == "no_action" and r.get("order_ids"):
        return [Violation("$.order_ids", "a no_action decision issues no orders")]
    return []


RULES: dict[str, Rule] = {
    "node_usage": _node_usage,
    "event": _event,
    "forecast": _forecast,
    "order": _order,
    "migration_status": _migration_status,
    "explanation": _explanation,
}


def check_rules(type_name: str, record: Mapping[str, Any]) -> list[Violation]:
    """Violations of the cross-field rules of ``type_name`` (the record must be schema-valid)."""
    rule = RULES.get(type_name)
    return rule(record) if rule is not None else []
