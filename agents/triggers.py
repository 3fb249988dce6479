"""External event triggers: maintenance windows, ingestion peaks and custom events.

:func:`build_event` turns operator input into a validated event record (pure: ``now`` is an
argument) and refuses bad input with a :class:`TriggerError` saying what is wrong: an end not
after the start, a window already over, an unknown scope, a bad factor or delta. The functions
below it talk to Kafka: :func:`publish_event` (plain JSON or a binary-mode CloudEvent),
:func:`read_events` (the compacted events topic, CloudEvents included), :func:`cancel_event`.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from agents.client import RecordPublisher, Table, read_table
from agents.timeparse import format_instant
from schemas.cloudevents import event_from_kafka, is_cloudevent, to_kafka
from schemas.codec import codec
from schemas.errors import ContractError
from schemas.settings import Settings

__all__ = [
    "EVENT_TYPES",
    "SCOPE_KINDS",
    "TriggerError",
    "build_event",
    "cancel_event",
    "is_active",
    "parse_ids",
    "parse_scope",
    "publish_event",
    "read_events",
]

# What operators type -> the contract's event_type.
EVENT_TYPES = {"maintenance": "maintenance", "peak": "ingestion_peak", "ingestion_peak": "ingestion_peak",
               "custom": "custom"}  # fmt: skip
SCOPE_KINDS = ("nodes", "workloads", "users", "apps", "pools")
_SINGULAR = {k[:-1]: k for k in SCOPE_KINDS}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}\Z")
_ID_PREFIX = {"maintenance": "maint", "ingestion_peak": "peak", "custom": "custom"}
MAX_FACTOR = 1000.0
_SCOPE_HELP = "use KIND=ID[,ID…] with KIND one of nodes, workloads, users, apps, pools (e.g. pools=blue,green)"


class TriggerError(ValueError):
    """Invalid trigger input; the message says what is wrong and what is accepted."""


def parse_ids(text: str | Iterable[str], what: str) -> list[str]:
    """``"n1, n2"`` -> ``["n1", "n2"]`` (order kept, duplicates removed); every item must be an id."""
    items = [i.strip() for i in text.split(",")] if isinstance(text, str) else [str(i).strip() for i in text]
    if not items or any(not i for i in items):
        raise TriggerError(f"{what}: empty name in {text!r}; give a comma-separated list such as n1,n2")
    for item in items:
        if not _ID.match(item):
            raise TriggerError(f"{what}: {item!r} is not a valid name (letters, digits and . _ : @ + -)")
    return list(dict.fromkeys(items))


def parse_scope(spec: str) -> tuple[str, list[str]]:
    """``"pools=blue,green"`` (or ``pools:blue,green``) -> ``("pools", ["blue", "green"])``."""
    m = re.match(r"\s*([A-Za-z_]+)\s*[=:]\s*(.*)\Z", spec, re.DOTALL)
    if not m:
        raise TriggerError(f"cannot read scope {spec!r}: {_SCOPE_HELP}")
    kind = m.group(1).lower()
    kind = _SINGULAR.get(kind, kind)
    if kind not in SCOPE_KINDS:
        raise TriggerError(f"unknown scope {m.group(1)!r}: {_SCOPE_HELP}")
    return kind, parse_ids(m.group(2), f"scope {kind}")


def _check_scope(scope: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, ids in scope.items():
        if kind not in SCOPE_KINDS:
            raise TriggerError(f"unknown scope {kind!r}: {_SCOPE_HELP}")
        listed = parse_ids(ids, kind)
        if listed:
            out[kind] = list(dict.fromkeys([*out.get(kind, []), *listed]))
    return out


def _check_impact(factor: float | None, deltas: Mapping[str, float | int] | None) -> dict[str, Any] | None:
    impact: dict[str, Any] = {}
    if factor is not None:
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not math.isfinite(factor):
            raise TriggerError(f"bad factor {factor!r}: give a number in (0, {MAX_FACTOR:g}], e.g. 1.5 for +50 %")
        if not 0 < factor <= MAX_FACTOR:
            raise TriggerError(f"bad factor {factor:g}: give a number in (0, {MAX_FACTOR:g}], e.g. 1.5 for +50 %")
        impact["factor"] = float(factor)
    clean: dict[str, Any] = {}
    limits = {"cpu_cores": 1e5, "mem_bytes": 2**50 * 1000, "io_bytes_per_second": 1e15}
    for name, value in (deltas or {}).items():
        if value is None:
            continue
        if name not in limits:
            raise TriggerError(f"unknown delta {name!r}: use cpu_cores, mem_bytes or io_bytes_per_second")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TriggerError(f"bad {name} delta {value!r}: give a finite number")
        if abs(value) > limits[name]:
            raise TriggerError(f"bad {name} delta {value:g}: at most {limits[name]:g} in magnitude")
        if value == 0:
            raise TriggerError(f"bad {name} delta 0: a delta must change something")
        clean[name] = int(value) if name == "mem_bytes" else float(value)
    if clean:
        impact["deltas"] = clean
    return impact or None


def build_event(
    event_type: str,
    *,
    starts_at: float,
    ends_at: float,
    scope: Mapping[str, Iterable[str]],
    now: float,
    factor: float | None = None,
    deltas: Mapping[str, float | int] | None = None,
    name: str | None = None,
    reason: str | None = None,
    event_id: str | None = None,
    source: str = "cli",
    recurrence_id: str | None = None,
    cancelled: bool = False,
) -> dict[str, Any]:
    """A validated event record, or :class:`TriggerError` naming the problem.

    Rules: the window must end after it starts and after ``now`` (a window that has begun but
    not ended is fine); the scope must be non-empty and of known kinds (a maintenance window
    needs nodes or pools); a peak needs an impact (a factor in (0, 1000] and/or deltas).
    Without ``event_id`` one is generated (``maint-…``, ``peak-…``, ``custom-…``).
    """
    etype = EVENT_TYPES.get(event_type)
    if etype is None:
        raise TriggerError(f"unknown event type {event_type!r}: use maintenance, peak or custom")
    for label, value in (("start", starts_at), ("end", ends_at)):
        if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value < 1e11:
            raise TriggerError(f"bad {label} time {value!r}")
    if ends_at <= starts_at:
        raise TriggerError(
            f"the window ends ({format_instant(ends_at)}) before or when it starts ({format_instant(starts_at)})"
        )
    if ends_at <= now:
        raise TriggerError(
            f"the window is in the past: it ended at {format_instant(ends_at)} (now is {format_instant(now)})"
        )
    clean_scope = _check_scope(scope)
    if not clean_scope:
        raise TriggerError("no scope: give at least one of nodes, workloads, users, apps, pools")
    if etype == "maintenance" and not ({"nodes", "pools"} & clean_scope.keys()):
        raise TriggerError("a maintenance window needs nodes or pools in its scope (--nodes n1,n2 or --pools p)")
    impact = _check_impact(factor, deltas)
    if etype == "ingestion_peak" and impact is None:
        raise TriggerError("a peak needs an expected impact: --factor F and/or --cpu-delta/--memory-delta/--io-delta")
    if event_id is None:
        event_id = f"{_ID_PREFIX[etype]}-{uuid.uuid4().hex[:16]}"
    elif not _ID.match(event_id):
        raise TriggerError(f"event id {event_id!r}: use letters, digits and . _ : @ + - (starting alphanumeric)")
    record: dict[str, Any] = {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": etype,
        "starts_at": float(starts_at),
        "ends_at": float(ends_at),
        "scope": clean_scope,
        "issued_at": float(now),
        "source": source,
    }
    optional: tuple[tuple[str, Any], ...] = (
        ("name", name), ("reason", reason), ("recurrence_id", recurrence_id), ("impact", impact)
    )  # fmt: skip
    for key, value in optional:
        if value:
            record[key] = value
    if cancelled:
        record["cancelled"] = True
    try:
        codec("event").validate(record)
    except ContractError as exc:
        raise TriggerError(f"invalid event: {exc}") from exc
    return record


def is_active(event: Mapping[str, Any], now: float) -> bool:
    """Not cancelled and not over at ``now`` (an upcoming window counts as active)."""
    return not event.get("cancelled", False) and float(event["ends_at"]) > now


# --- Kafka --------------------------------------------------------------------------------------------
def publish_event(
    publisher: RecordPublisher, event: Mapping[str, Any], *, cloudevents: bool = False, ce_source: str = "/plba/cli"
) -> str:
    """Queue an event on the events topic (key: event_id), plain or as a binary CloudEvent."""
    if cloudevents:
        headers, value = to_kafka(event, source=ce_source)
        publisher.publish_raw("event", str(event["event_id"]), value, headers)
        return str(event["event_id"])
    return publisher.publish("event", event)


def read_events(settings: Settings, *, timeout: float = 20.0, now: float | None = None) -> Table:
    """The events table (key -> event), plain records and CloudEvents alike."""

    def decode(headers: list[tuple[str, bytes]], value: bytes) -> dict[str, Any]:
        if is_cloudevent(headers):
            return event_from_kafka(headers, value, now=now, max_bytes=settings.max_record_bytes)
        return codec("event", max_bytes=settings.max_record_bytes).decode(value)

    return read_table(settings, "event", decoder=decode, timeout=timeout)


def find_event(table: Table, event_id: str) -> tuple[str, dict[str, Any]] | None:
    """(key, record) of ``event_id`` in the table (by key first, then by the record's id)."""
    if event_id in table.records:
        return event_id, table.records[event_id]
    for key, record in table.records.items():
        if record.get("event_id") == event_id:
            return key, record
    return None


def cancel_event(existing: Mapping[str, Any], *, now: float, reason: str | None = None) -> dict[str, Any]:
    """The cancelling record of an event: the same event with ``cancelled`` and a new ``issued_at``."""
    record = dict(existing)
    record["cancelled"] = True
    record["issued_at"] = float(now)
    if reason:
        record["reason"] = reason
    try:
        codec("event").validate(record)
    except ContractError as exc:
        raise TriggerError(f"cannot cancel: {exc}") from exc
    return record
