"""Valid records of every input topic, and bad ones made from them, each with the DLQ code it must get.

Pure and seeded: ``valid(role, i, now)`` builds a contract-valid record near ``now`` (so it passes
the consumers' clock check), ``bad(role, kind, rng, now, max_bytes)`` a record that a consumer must
refuse, and :data:`EXPECTED_CODE` says with which ``error_code`` it has to land in the DLQ. The
injection run (:mod:`plba.faults.injection`) sends them interleaved into a running worker; the unit
tests check every kind against the codec and the clock rule, so the expectation is not assumed.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson

from schemas import registry
from schemas.errors import (
    CLOCK_SKEW,
    EMPTY_VALUE,
    INVALID_JSON,
    NOT_AN_OBJECT,
    RULE_VIOLATION,
    SCHEMA_VIOLATION,
    TOO_LARGE,
    UNKNOWN_SCHEMA_VERSION,
)
from schemas.topics import TOPICS

# The topics a user or a node writes to (orders come from the decision processor, but a broken or
# foreign producer may write there too, and the dispatcher must survive that).
INPUT_ROLES = ("workload_usage", "node_usage", "events", "policies", "orders")

EXPECTED_CODE: dict[str, str] = {
    "empty_value": EMPTY_VALUE,
    "null_value": EMPTY_VALUE,
    "random_bytes": INVALID_JSON,
    "truncated_json": INVALID_JSON,
    "not_an_object": NOT_AN_OBJECT,
    "field_deleted": SCHEMA_VIOLATION,
    "wrong_type": SCHEMA_VIOLATION,
    "out_of_range": SCHEMA_VIOLATION,
    "oversized": TOO_LARGE,
    "unknown_schema_version": UNKNOWN_SCHEMA_VERSION,
    "clock_skew_future": CLOCK_SKEW,
    "clock_skew_past": CLOCK_SKEW,
    "rule_violation": RULE_VIOLATION,
}
# Record types whose contract has cross-field rules (schemas.rules) get rule-breaking records too.
_RULE_BREAKERS = {"node_usage", "events", "orders"}
# On compacted topics a null value is a tombstone (a valid delete), elsewhere it is a bad record.
_COMPACTED = {role for role in ("events", "policies") if TOPICS[role].cleanup == "compact"}

# Every instant field of a record; clock-skew records shift them all by the same amount so that
# only the clock, not a relation between fields, is wrong.
_TIME_FIELDS = ("sampled_at", "started_at", "starts_at", "ends_at", "issued_at", "deadline_at", "updated_at")
_PRIMARY_TIME = {
    "workload_usage": "sampled_at",
    "node_usage": "sampled_at",
    "events": "starts_at",
    "policies": "updated_at",
    "orders": "issued_at",
}
_OUT_OF_RANGE: dict[str, tuple[tuple[str, Any], ...]] = {
    "workload_usage": (("cpu_ratio", 1.5), ("mem_used_bytes", -1), ("sampled_at", -5.0), ("priority", 10**7)),
    "node_usage": (("cpu_ratio", -0.1), ("mem_total_bytes", 0), ("sampled_at", 1e12), ("interval_seconds", 0)),
    "events": (("starts_at", -1.0), ("ends_at", 1e12), ("event_type", "earthquake")),
    "policies": (("priority", -3), ("updated_at", -1.0), ("migrations_per_day", -1), ("subject_kind", "planet")),
    "orders": (("issued_at", -1.0), ("method", "teleport"), ("priority", 10**7), ("mode", "yolo")),
}
_GiB = 1024**3


def kinds(role: str) -> tuple[str, ...]:
    """The bad-record kinds that apply to the topic of ``role``."""
    return tuple(
        k
        for k in EXPECTED_CODE
        if (k != "rule_violation" or role in _RULE_BREAKERS) and (k != "null_value" or role not in _COMPACTED)
    )


def record_type(role: str) -> str:
    rtype = TOPICS[role].record_type
    assert rtype is not None
    return rtype


def key_of(role: str, rec: dict[str, Any]) -> bytes:
    field = {
        "workload_usage": "workload_id",
        "node_usage": "node_id",
        "events": "event_id",
        "policies": "subject",
        "orders": "workload_id",
    }[role]
    return str(rec.get(field, "bad")).encode()


def valid(role: str, i: int, now: float, tag: str = "f") -> dict[str, Any]:
    """A contract-valid record of ``role``, number ``i``, timestamped near ``now``.

    Quiet on purpose: low usage (no node turns hot), orders already past their deadline (the
    dispatcher answers each with an ``expired`` status, which counts it without any executor).
    """
    node = f"{tag}-node-{i % 8}"
    if role == "workload_usage":
        return {
            "schema_version": 1, "workload_id": f"{tag}-wl-{i % 64}", "node_id": node, "kind": "container",
            "driver": "sim", "sampled_at": now - 1.0 + i * 1e-3, "interval_seconds": 5.0, "cpu_cores_used": 0.1,
            "cpu_ratio": 0.0125, "mem_used_bytes": 64 * 2**20, "io_bytes_per_second": 1000.0, "priority": 100,
        }  # fmt: skip
    if role == "node_usage":
        return {
            "schema_version": 1, "node_id": node, "sampled_at": now - 1.0 + i * 1e-3, "interval_seconds": 5.0,
            "cpu_ratio": 0.05, "mem_used_bytes": 2 * _GiB, "mem_total_bytes": 16 * _GiB,
            "disk_read_bytes_per_second": 1e5, "disk_write_bytes_per_second": 1e5,
            "net_rx_bytes_per_second": 1e5, "net_tx_bytes_per_second": 1e5,
            "capacity": {"cpu_cores": 8, "mem_bytes": 16 * _GiB, "io_bytes_per_second": 1e9},
            "fingerprint": {
                "arch": "x86_64", "cpu_model": "fault-injection", "flags_digest": "0123abcd", "cores": 8,
                "memory_class": "16Gi", "drivers": {"sim": "1"}, "labels": {}, "pool": f"{tag}-pool", "zone": "z1",
            },
            "workloads": [f"{tag}-wl-{i % 64}"], "executor_endpoint": None,
        }  # fmt: skip
    if role == "events":
        return {
            "schema_version": 1, "event_id": f"{tag}-ev-{i}", "event_type": "custom", "name": "fault injection",
            "starts_at": now + 3600.0, "ends_at": now + 7200.0, "scope": {"nodes": [node]}, "issued_at": now,
            "source": "faults",
        }  # fmt: skip
    if role == "policies":
        return {
            "schema_version": 1, "subject_kind": "workload", "subject": f"{tag}-wl-{i}", "priority": 100 + i % 900,
            "tier": "silver", "migratable": True, "updated_at": now,
        }  # fmt: skip
    if role == "orders":
        return {
            "schema_version": 1, "order_id": f"{tag}-ord-{i}", "workload_id": f"{tag}-wl-{i % 64}",
            "kind": "container", "source_node": node, "target_node": f"{tag}-node-spare", "method": "simulated",
            "reason": {"code": "predicted_overload", "resource": "cpu", "message": "fault injection"},
            "issued_at": now - 600.0, "deadline_at": now - 300.0, "dry_run": False, "mode": "enforce",
            "pool": f"{tag}-pool", "policy": "predictive", "priority": 100,
        }  # fmt: skip
    raise KeyError(f"no valid-record builder for role {role!r}")


def encode(rec: Any) -> bytes:
    return orjson.dumps(rec)


def bad(role: str, kind: str, rng: random.Random, now: float, max_bytes: int, i: int = 0) -> bytes | None:
    """A record of ``kind`` for the topic of ``role`` that must be refused with ``EXPECTED_CODE[kind]``."""
    base = valid(role, i, now, tag="bad")
    if kind == "empty_value":
        return b""
    if kind == "null_value":
        if role in _COMPACTED:
            raise ValueError(f"a null value on {role} is a tombstone, not a bad record")
        return None
    if kind == "random_bytes":
        # A leading control byte can start no JSON text, whatever follows.
        return bytes([rng.randrange(0, 9)]) + rng.randbytes(rng.randrange(0, 512))
    if kind == "truncated_json":
        data = encode(base)
        return data[: rng.randrange(1, len(data))]  # every strict prefix of an object is invalid
    if kind == "not_an_object":
        return encode(rng.choice([[base], 42, "a string", None, True, [1, 2, 3]]))
    if kind == "oversized":
        data = encode(base)
        # Valid JSON (trailing whitespace), just too big: the size check must come first.
        return data + b" " * (max_bytes - len(data) + 1 + rng.randrange(0, 1024))
    rec = copy.deepcopy(base)
    if kind == "field_deleted":
        # Any required field, schema_version too: a missing version is a schema violation.
        del rec[rng.choice([k for k in registry.schema(record_type(role))["required"] if k in rec])]
    elif kind == "wrong_type":
        name = rng.choice([k for k in sorted(rec) if k != "schema_version"])
        rec[name] = _other_type(rec[name], rng)
    elif kind == "out_of_range":
        name, value = rng.choice(_OUT_OF_RANGE[role])
        rec[name] = value
    elif kind == "unknown_schema_version":
        rec["schema_version"] = rng.choice([0, 2, 3, 7, 99, -1])
    elif kind in ("clock_skew_future", "clock_skew_past"):
        primary = rec[_PRIMARY_TIME[role]]
        if kind == "clock_skew_future":
            target = now + rng.uniform(2.0, 30.0) * 365 * 86400
        else:
            target = rng.uniform(1e5, 9e8)  # 1970 … 1998: a reset or unset clock
        shift = target - primary
        for name in _TIME_FIELDS:
            if name in rec:
                rec[name] = rec[name] + shift
    elif kind == "rule_violation":
        if role == "node_usage":
            rec["mem_used_bytes"] = rec["mem_total_bytes"] + 1
        elif role == "events":
            rec["ends_at"] = rec["starts_at"]
        elif role == "orders":
            rec["target_node"] = rec["source_node"]
        else:
            raise ValueError(f"{role} records have no cross-field rules")
    else:
        raise ValueError(f"unknown bad-record kind {kind!r}")
    return encode(rec)


def _other_type(value: Any, rng: random.Random) -> Any:
    """A JSON value of a different type than ``value`` (none of the schemas take a union there)."""
    if isinstance(value, bool):
        return rng.choice(["yes", 1, [True]])
    if isinstance(value, int | float):
        return rng.choice(["12", [value], {"v": value}, True])
    if isinstance(value, str):
        return rng.choice([12345, [value], {"s": value}, False])
    if isinstance(value, list):
        return rng.choice([{"items": value}, "list", 3])
    if isinstance(value, dict):
        return rng.choice([[value], "object", 7])
    return rng.choice([12345, "text", [1]])  # None: the one nullable field we set (executor_endpoint)


def plan(role: str, n_bad: int, n_valid: int, rng: random.Random) -> list[str | None]:
    """The interleaving: ``n_bad`` kind names (round robin over the role's kinds) and ``n_valid`` Nones, shuffled."""
    ks = kinds(role)
    out: list[str | None] = [ks[j % len(ks)] for j in range(n_bad)]
    out += [None] * n_valid
    rng.shuffle(out)
    return out
