"""The effective SLA of a workload, resolved from the policies topic (shared contract logic).

Policies live on the compacted policies topic, one record per subject, keyed
``<subject_kind>:<subject>`` (``workload:web-1``, ``app:shop``, ``user:ann``,
``default:default``); deleting a policy is a tombstone under its key.

Precedence (:func:`resolve_policy`): **workload > app > user > default > built-in**. Each field is
resolved on its own: the most specific policy that *sets* the field wins, and a field a policy
leaves out is taken from the next level. Both sides use it: ``plba sla`` shows what applies to a
workload, and the decision processor ranks candidates with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.models import Policy

__all__ = ["BUILTIN", "FIELDS", "PRECEDENCE", "SUBJECT_KINDS", "EffectivePolicy", "policy_key", "resolve_policy"]

SUBJECT_KINDS = ("workload", "app", "user", "default")
PRECEDENCE = ("workload", "app", "user", "default")  # most specific first
FIELDS = (
    "priority",
    "tier",
    "max_downtime_seconds",
    "migratable",
    "pin_node",
    "anti_affinity_group",
    "migrations_per_day",
)


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The policy that applies to one workload, and where each field came from.

    ``sources`` maps each field to the policy key that set it (``app:shop``) or ``builtin``.
    """

    priority: int = 50
    tier: str = "default"
    max_downtime_seconds: float | None = None  # None: no limit
    migratable: bool = True
    pin_node: str | None = None
    anti_affinity_group: str | None = None
    migrations_per_day: int | None = None  # None: unlimited
    sources: Mapping[str, str] = field(default_factory=lambda: dict.fromkeys(FIELDS, "builtin"))

    @property
    def can_migrate(self) -> bool:
        """Migratable and not pinned (a pin implies not migratable)."""
        return self.migratable and self.pin_node is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f: getattr(self, f) for f in FIELDS}
        out["can_migrate"] = self.can_migrate
        out["sources"] = dict(self.sources)
        return out


BUILTIN = EffectivePolicy()


def policy_key(subject_kind: str, subject: str) -> str:
    """The Kafka key of a subject's policy: ``workload:web-1``, ``default:default``."""
    return f"{subject_kind}:{subject}"


def _as_dict(record: Policy | Mapping[str, Any]) -> Mapping[str, Any]:
    return record.to_dict() if isinstance(record, Policy) else record


def _index(policies: Mapping[str, Any] | Iterable[Any]) -> Mapping[str, Mapping[str, Any]]:
    if isinstance(policies, Mapping):
        return {k: _as_dict(v) for k, v in policies.items() if v is not None}
    out: dict[str, Mapping[str, Any]] = {}
    records: Iterable[Any] = policies
    for rec in records:
        d = _as_dict(rec)
        out[policy_key(d["subject_kind"], d["subject"])] = d
    return out


def resolve_policy(
    workload_id: str,
    app: str | None,
    user: str | None,
    policies: Mapping[str, Any] | Iterable[Any],
    *,
    base: EffectivePolicy = BUILTIN,
) -> EffectivePolicy:
    """The effective policy of a workload: precedence workload > app > user > default > ``base``.

    ``policies`` is the policies table (key -> record dict, tombstoned keys absent or ``None``)
    or an iterable of policy records (dicts or :class:`~schemas.models.Policy`). Each field
    comes from the most specific policy that sets it.

    >>> table = {
    ...     "default:default": {"subject_kind": "default", "subject": "default", "priority": 10, "tier": "bronze"},
    ...     "user:ann": {"subject_kind": "user", "subject": "ann", "priority": 40, "pin_node": "n1"},
    ...     "app:shop": {"subject_kind": "app", "subject": "shop", "priority": 80},
    ... }
    >>> p = resolve_policy("web-1", "shop", "ann", table)
    >>> (p.priority, p.tier, p.pin_node, p.can_migrate)
    (80, 'bronze', 'n1', False)
    >>> (p.sources["priority"], p.sources["tier"], p.sources["pin_node"])
    ('app:shop', 'default:default', 'user:ann')
    """
    table = _index(policies)
    levels: list[tuple[str, Mapping[str, Any]]] = []
    for kind, subject in (("workload", workload_id), ("app", app), ("user", user), ("default", "default")):
        if subject:
            key = policy_key(kind, subject)
            rec = table.get(key)
            if rec is not None:
                levels.append((key, rec))
    values: dict[str, Any] = {}
    sources = dict(base.sources)
    for name in FIELDS:
        for key, rec in levels:
            if rec.get(name) is not None:
                values[name] = rec[name]
                sources[name] = key
                break
    return replace(base, **values, sources=sources)
