"""Priorities and SLA policies: building policy records and resolving a workload's effective policy.

Policies live on the compacted policies topic, one record per subject, keyed
``<subject_kind>:<subject>`` (``workload:web-1``, ``app:shop``, ``user:ann``,
``default:default``). Deleting a policy is a tombstone (null value) under its key.

Precedence (:func:`resolve_policy`): **workload > app > user > default > built-in**. Each
field is resolved on its own: the most specific policy that *sets* the field wins, and a field a
policy leaves out is taken from the next level. (The contract has no "explicit null": a more
specific level cannot clear a pin or a group set by a less specific one, only override it.)

The built-in values (priority 50, tier ``default``, migratable, no limits) and the field-by-field
rule are the same as :func:`schemas.sla.resolve_policy`, which the stream side uses; this module
adds where each value came from, the remaining fields, and the building of policy records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.codec import codec
from schemas.errors import ContractError
from schemas.models import Policy

__all__ = [
    "BUILTIN",
    "FIELDS",
    "PRECEDENCE",
    "EffectivePolicy",
    "PolicyError",
    "build_policy",
    "policy_key",
    "resolve_policy",
]

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
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}\Z")
_TIER = re.compile(r"[a-z][a-z0-9_.-]{0,63}\Z")
MAX_PRIORITY = 1_000_000


class PolicyError(ValueError):
    """Invalid policy input; the message names the option or field and what is accepted."""


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


def build_policy(
    subject_kind: str,
    subject: str | None,
    *,
    updated_at: float,
    existing: Mapping[str, Any] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A validated policy record: ``existing`` (if any) with ``changes`` applied.

    ``changes`` holds fields of :data:`FIELDS` plus ``note``: ``None`` means "leave as is",
    :data:`UNSET` removes the field from this subject's record (so it is inherited again).
    Raises :class:`PolicyError` with a precise message.
    """
    if subject_kind not in SUBJECT_KINDS:
        raise PolicyError(f"subject kind {subject_kind!r}: use one of {', '.join(SUBJECT_KINDS)}")
    if subject_kind == "default":
        if subject not in (None, "", "default"):
            raise PolicyError("the default policy has no subject (its subject is 'default')")
        subject = "default"
    elif not subject or not _ID.match(subject):
        raise PolicyError(
            f"{subject_kind} {subject!r}: use 1-253 of letters, digits and . _ : @ + - (starting alphanumeric)"
        )
    record: dict[str, Any] = {k: v for k, v in (existing or {}).items() if k in (*FIELDS, "note")}
    for name, value in changes.items():
        if name not in (*FIELDS, "note"):
            raise PolicyError(f"unknown policy field {name!r}")
        if value is UNSET:
            record.pop(name, None)
        elif value is not None:
            record[name] = _check_field(name, value)
    record.update(schema_version=1, subject_kind=subject_kind, subject=subject, updated_at=updated_at)
    try:
        codec("policy").validate(record)
    except ContractError as exc:
        raise PolicyError(f"invalid policy: {exc}") from exc
    return record


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def _check_field(name: str, value: Any) -> Any:
    if name == "priority":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
            raise PolicyError(
                f"priority must be an integer in 0..{MAX_PRIORITY} (higher = more important), not {value!r}"
            )
    elif name == "max_downtime_seconds":
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise PolicyError(f"max downtime must be a number of seconds >= 0, not {value!r}")
    elif name == "migrations_per_day":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000:
            raise PolicyError(f"migrations per day must be an integer in 0..100000, not {value!r}")
    elif name == "migratable":
        if not isinstance(value, bool):
            raise PolicyError(f"migratable must be true or false, not {value!r}")
    elif name == "tier":
        if not isinstance(value, str) or not _TIER.match(value):
            raise PolicyError(f"tier {value!r}: use a lower-case name such as gold, silver, bronze")
    elif name in ("pin_node", "anti_affinity_group"):
        if not isinstance(value, str) or not _ID.match(value):
            what = "pin node" if name == "pin_node" else "anti-affinity group"
            raise PolicyError(f"{what} {value!r}: use letters, digits and . _ : @ + - (starting alphanumeric)")
    elif name == "note" and (not isinstance(value, str) or len(value) > 4096):
        raise PolicyError("note must be text of at most 4096 characters")
    return value
