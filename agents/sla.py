"""Building SLA policy records for the policies topic (``plba sla``), validated.

Resolution (which policy applies to a workload, with precedence workload > app > user > default
> built-in, field by field) is shared contract logic in :mod:`schemas.sla`, re-exported here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from schemas.codec import codec
from schemas.errors import ContractError
from schemas.sla import BUILTIN, FIELDS, PRECEDENCE, SUBJECT_KINDS, EffectivePolicy, policy_key, resolve_policy

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

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}\Z")
_TIER = re.compile(r"[a-z][a-z0-9_.-]{0,63}\Z")
MAX_PRIORITY = 1_000_000


class PolicyError(ValueError):
    """Invalid policy input; the message names the option or field and what is accepted."""


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
