"""Recurring event windows from a YAML calendar (``plba trigger apply FILE``).

Format::

    calendar: ops                 # optional: prefixes the entries' ids (ops.nightly-etl)
    timezone: Europe/Berlin       # optional default for the entries (IANA name; default UTC)
    entries:
      - id: nightly-etl           # unique in the file
        type: peak                # maintenance | peak | custom
        cron: "0 2 * * *"         # exactly one of cron, daily, weekly
        duration: 1h
        scope: {apps: [etl]}      # nodes, workloads, users, apps, pools
        factor: 1.8               # and/or deltas: {cpu_cores: 2, mem_bytes: 4Gi, io_bytes_per_second: 50M}
        reason: nightly batch import
      - id: sunday-patching
        type: maintenance
        weekly: {days: [sun], at: "03:00"}   # or day: sun
        duration: 2h
        scope: {nodes: [n1, n2]}
      - id: morning-report
        type: custom
        name: morning report
        daily: {at: "06:30"}                 # or daily: "06:30"
        duration: 30m
        timezone: America/New_York
        scope: {pools: [blue]}

Times of day are in the entry's time zone (daylight saving handled by croniter). YAML reads an
unquoted ``3:00`` as the number 180 (base 60); that is understood too.

Materializing is pure (``now`` is an argument) and deterministic: the occurrence of entry ``E``
(of calendar ``C``) starting at ``T`` always gets event id ``C.E@<T as YYYYmmddTHHMMSSZ>`` and
``recurrence_id`` ``C.E``. Occurrences in progress at ``now`` are included; those over are not.
:func:`plan_apply` compares with the events already on the topic, so re-applying a calendar
publishes nothing new.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter

from agents.timeparse import TimeParseError, parse_duration, parse_size
from agents.triggers import EVENT_TYPES, TriggerError, build_event

__all__ = ["ApplyPlan", "Calendar", "CalendarEntry", "CalendarError", "load_calendar", "materialize", "plan_apply"]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,99}\Z")  # no '@': it separates id and occurrence
_TOP_KEYS = frozenset({"calendar", "timezone", "entries"})
_ENTRY_KEYS = frozenset(
    {"id", "type", "cron", "daily", "weekly", "duration", "timezone", "scope", "factor", "deltas", "name", "reason"}
)
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
_COMPARE_IGNORES = ("issued_at",)


class CalendarError(ValueError):
    """A calendar that cannot be used; the message names the entry and the key."""


@dataclass(frozen=True)
class CalendarEntry:
    entry_id: str  # with the calendar prefix: the recurrence id
    event_type: str
    cron: str
    duration_seconds: float
    tz: ZoneInfo
    scope: dict[str, list[str]]
    factor: float | None = None
    deltas: dict[str, float | int] = field(default_factory=dict)
    name: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Calendar:
    name: str | None
    entries: tuple[CalendarEntry, ...]

    @property
    def recurrence_ids(self) -> frozenset[str]:
        return frozenset(e.entry_id for e in self.entries)


def _time_of_day(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 base 60: 3:00 -> 180
        hours, minutes = divmod(value, 60)
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)):
        hours, minutes = int(m.group(1)), int(m.group(2))
    else:
        raise CalendarError(f'{where}: time of day {value!r}: use "HH:MM" (quoted), e.g. "02:30"')
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise CalendarError(f"{where}: time of day {value!r} is not a valid HH:MM")
    return hours, minutes


def _schedule(raw: Mapping[str, Any], where: str) -> str:
    given = [k for k in ("cron", "daily", "weekly") if k in raw]
    if len(given) != 1:
        raise CalendarError(f"{where}: give exactly one of cron, daily, weekly (got {', '.join(given) or 'none'})")
    kind = given[0]
    spec = raw[kind]
    if kind == "cron":
        if not isinstance(spec, str) or not croniter.is_valid(spec):
            raise CalendarError(f'{where}: cron {spec!r} is not a valid cron expression (e.g. "0 2 * * *")')
        return spec
    if kind == "daily":
        at = spec.get("at") if isinstance(spec, Mapping) else spec
        if isinstance(spec, Mapping) and set(spec) - {"at"}:
            raise CalendarError(f"{where}: daily takes only 'at'")
        h, m = _time_of_day(at, f"{where}: daily")
        return f"{m} {h} * * *"
    if not isinstance(spec, Mapping) or set(spec) - {"at", "day", "days"} or "at" not in spec:
        raise CalendarError(f"{where}: weekly needs 'at' and 'day' or 'days', e.g. {{days: [sat, sun], at: \"03:00\"}}")
    days = spec.get("days", spec.get("day"))
    days = [days] if isinstance(days, str) else days
    if not days or not isinstance(days, list):
        raise CalendarError(f"{where}: weekly needs 'day' or 'days' (mon … sun)")
    numbers = []
    for d in days:
        key = str(d).strip().lower()[:3]
        if key not in _DAYS:
            raise CalendarError(f"{where}: unknown day {d!r}: use mon, tue, wed, thu, fri, sat, sun")
        numbers.append(_DAYS[key])
    h, m = _time_of_day(spec["at"], f"{where}: weekly")
    return f"{m} {h} * * {','.join(str(n) for n in sorted(set(numbers)))}"


def _zone(value: Any, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"{where}: unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from None


def load_calendar(source: str | Path, *, text: str | None = None) -> Calendar:
    """Parse and check a calendar file (or ``text``, with ``source`` naming it in messages)."""
    label = str(source)
    try:
        raw = yaml.safe_load(text if text is not None else Path(source).read_text())
    except OSError as exc:
        raise CalendarError(f"{label}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise CalendarError(f"{label}: not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise CalendarError(f"{label}: expected a mapping with 'entries'")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise CalendarError(f"{label}: unknown key {unknown[0]!r} (calendar, timezone, entries)")
    name = raw.get("calendar")
    if name is not None and (not isinstance(name, str) or not _ID.match(name)):
        raise CalendarError(f"{label}: calendar name {name!r}: use letters, digits and . _ : + -")
    default_tz = _zone(raw.get("timezone", "UTC"), label)
    items = raw.get("entries")
    if not isinstance(items, list) or not items:
        raise CalendarError(f"{label}: 'entries' must be a non-empty list")
    entries: list[CalendarEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"{label}: entries[{i}]"
        if not isinstance(item, Mapping):
            raise CalendarError(f"{where}: expected a mapping")
        if isinstance(item.get("id"), str):
            where = f"{where} ({item['id']})"
        entries.append(_entry(item, where, name, default_tz, seen))
    return Calendar(name, tuple(entries))


def _entry(
    item: Mapping[str, Any], where: str, calendar: str | None, default_tz: ZoneInfo, seen: set[str]
) -> CalendarEntry:
    unknown = sorted(set(item) - _ENTRY_KEYS)
    if unknown:
        raise CalendarError(f"{where}: unknown key {unknown[0]!r} ({', '.join(sorted(_ENTRY_KEYS))})")
    entry_id = item.get("id")
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        raise CalendarError(f"{where}: 'id' is required: letters, digits and . _ : + - (no @)")
    if entry_id in seen:
        raise CalendarError(f"{where}: duplicate id {entry_id!r}")
    seen.add(entry_id)
    etype = item.get("type")
    if etype not in EVENT_TYPES:
        raise CalendarError(f"{where}: type {etype!r}: use maintenance, peak or custom")
    try:
        duration = parse_duration(str(item.get("duration", "")))
    except TimeParseError as exc:
        raise CalendarError(f"{where}: duration: {exc}") from None
    if duration <= 0:
        raise CalendarError(f"{where}: duration must be positive")
    scope = item.get("scope")
    if not isinstance(scope, Mapping) or not scope:
        raise CalendarError(f"{where}: 'scope' is required, e.g. {{nodes: [n1, n2]}}")
    clean_scope = {str(k): [str(v) for v in (vals if isinstance(vals, list) else [vals])] for k, vals in scope.items()}
    deltas: dict[str, float | int] = {}
    raw_deltas = item.get("deltas") or {}
    if not isinstance(raw_deltas, Mapping):
        raise CalendarError(f"{where}: deltas must be a mapping of cpu_cores, mem_bytes, io_bytes_per_second")
    for key, value in raw_deltas.items():
        try:
            deltas[str(key)] = parse_size(value) if isinstance(value, str) else value
        except TimeParseError as exc:
            raise CalendarError(f"{where}: deltas.{key}: {exc}") from None
    factor = item.get("factor")
    entry = CalendarEntry(
        entry_id=f"{calendar}.{entry_id}" if calendar else entry_id,
        event_type=str(etype),
        cron=_schedule(item, where),
        duration_seconds=duration,
        tz=_zone(item["timezone"], where) if "timezone" in item else default_tz,
        scope=clean_scope,
        factor=factor,
        deltas=deltas,
        name=item.get("name"),
        reason=item.get("reason"),
    )
    # Check scope and impact now, with a window that is certainly valid, so errors name the entry.
    try:
        _event(entry, 1e9, now=0.0)
    except TriggerError as exc:
        raise CalendarError(f"{where}: {exc}") from None
    return entry


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


def _event(entry: CalendarEntry, start: float, *, now: float) -> dict[str, Any]:
    return build_event(
        entry.event_type,
        starts_at=start,
        ends_at=start + entry.duration_seconds,
        scope=entry.scope,
        now=now,
        factor=entry.factor,
        deltas=entry.deltas,
        name=entry.name,
        reason=entry.reason,
        event_id=f"{entry.entry_id}@{_stamp(start)}",
        source="calendar",
        recurrence_id=entry.entry_id,
    )


def occurrences(entry: CalendarEntry, *, now: float, horizon_seconds: float, max_count: int) -> list[float]:
    """Start instants of the entry's windows that end after ``now`` and start within the horizon."""
    begin = datetime.fromtimestamp(now - entry.duration_seconds, tz=entry.tz)
    it = croniter(entry.cron, begin)
    out: list[float] = []
    limit = now + horizon_seconds
    while len(out) < max_count:
        start = it.get_next(datetime).timestamp()
        if start > limit:
            break
        if start + entry.duration_seconds > now:
            out.append(start)
    return out


def materialize(
    calendar: Calendar, *, now: float, horizon_seconds: float = 7 * 86400.0, max_count: int = 100
) -> list[dict[str, Any]]:
    """The event records of every entry's occurrences in ``(now, now + horizon]`` (ongoing included).

    At most ``max_count`` occurrences per entry. Deterministic: the same calendar and occurrence
    always give the same event id and content (``issued_at`` aside).
    """
    if horizon_seconds <= 0 or max_count < 1:
        raise CalendarError("the horizon must be positive and the count at least 1")
    events = []
    for entry in calendar.entries:
        for start in occurrences(entry, now=now, horizon_seconds=horizon_seconds, max_count=max_count):
            events.append(_event(entry, start, now=now))
    return events


@dataclass
class ApplyPlan:
    """What applying a calendar will publish."""

    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    cancel: list[dict[str, Any]] = field(default_factory=list)  # with --prune

    @property
    def to_publish(self) -> list[dict[str, Any]]:
        return [*self.create, *self.update, *self.cancel]


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k not in _COMPARE_IGNORES}  # noqa: E731
    return strip(a) == strip(b)


def plan_apply(
    calendar: Calendar,
    desired: list[dict[str, Any]],
    existing: Mapping[str, Mapping[str, Any]],
    *,
    now: float,
    prune: bool = False,
) -> ApplyPlan:
    """Compare the materialized events with the topic's table (key -> event).

    Identical events (``issued_at`` aside) are left alone, so re-applying publishes nothing.
    A cancelled occurrence stays cancelled (the calendar does not resurrect it). With
    ``prune``, future occurrences of this calendar's entries that the calendar no longer
    produces (an entry removed or rescheduled) are cancelled.
    """
    plan = ApplyPlan()
    wanted = {e["event_id"]: e for e in desired}
    for event_id, event in wanted.items():
        old = existing.get(event_id)
        if old is None:
            plan.create.append(event)
        elif old.get("cancelled") or _same(old, event):
            plan.unchanged.append(event_id)
        else:
            plan.update.append(event)
    if prune:
        ours = calendar.recurrence_ids
        prefix = f"{calendar.name}." if calendar.name else None
        for key, old in existing.items():
            rid = old.get("recurrence_id")
            if (
                key not in wanted
                and old.get("source") == "calendar"
                and rid is not None
                and (rid in ours or (prefix is not None and str(rid).startswith(prefix)))
                and not old.get("cancelled")
                and float(old["starts_at"]) > now
            ):
                plan.cancel.append({**old, "cancelled": True, "issued_at": float(now)})
    return plan
