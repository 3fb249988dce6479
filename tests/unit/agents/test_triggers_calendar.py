"""YAML calendars: schedules, deterministic ids, idempotent apply, and precise errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from agents.calendar import CalendarError, load_calendar, materialize, occurrences, plan_apply
from schemas.codec import codec

# Sunday 2025-06-15 12:00 UTC
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC).timestamp()
DAY = 86400.0

CALENDAR = """
calendar: ops
entries:
  - id: nightly-etl
    type: peak
    cron: "0 2 * * *"
    duration: 1h
    scope: {apps: [etl]}
    factor: 1.8
    deltas: {mem_bytes: 4Gi}
    reason: nightly batch import
  - id: sunday-patching
    type: maintenance
    weekly: {days: [sun], at: "11:30"}
    duration: 2h
    scope: {nodes: [n1, n2]}
  - id: report
    type: custom
    name: morning report
    daily: {at: "06:30"}
    duration: 30m
    timezone: America/New_York
    scope: {pools: [blue]}
"""


def cal(text=CALENDAR):
    return load_calendar("cal.yaml", text=text)


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def test_materialize_gives_valid_events_with_deterministic_ids():
    events = materialize(cal(), now=NOW, horizon_seconds=2 * DAY)
    for e in events:
        codec("event").validate(e)
        assert e["source"] == "calendar"
    by_entry: dict[str, list[dict]] = {}
    for e in events:
        by_entry.setdefault(e["recurrence_id"], []).append(e)
    etl = by_entry["ops.nightly-etl"]
    assert [utc(e["starts_at"]) for e in etl] == ["2025-06-16 02:00", "2025-06-17 02:00"]
    assert etl[0]["event_id"] == "ops.nightly-etl@20250616T020000Z"
    assert etl[0]["impact"] == {"factor": 1.8, "deltas": {"mem_bytes": 4 * 2**30}}
    # The Sunday window started at 11:30 and is still on at 12:00: included (ongoing).
    (patch,) = by_entry["ops.sunday-patching"]
    assert (utc(patch["starts_at"]), utc(patch["ends_at"])) == ("2025-06-15 11:30", "2025-06-15 13:30")
    # 06:30 New York (EDT, UTC-4) = 10:30 UTC; today's is over, so the next two.
    assert [utc(e["starts_at"]) for e in by_entry["ops.report"]] == ["2025-06-16 10:30", "2025-06-17 10:30"]


def test_same_calendar_same_events_later_too():
    a = materialize(cal(), now=NOW, horizon_seconds=DAY)
    b = materialize(cal(), now=NOW + 60, horizon_seconds=DAY)
    strip = lambda es: [{k: v for k, v in e.items() if k != "issued_at"} for e in es]  # noqa: E731
    assert strip(a) == strip(b)


def test_count_and_horizon_bound_the_occurrences():
    c = cal()
    assert len(occurrences(c.entries[0], now=NOW, horizon_seconds=30 * DAY, max_count=5)) == 5
    assert len(occurrences(c.entries[0], now=NOW, horizon_seconds=3 * DAY, max_count=100)) == 3


def test_reapplying_publishes_nothing():
    c = cal()
    first = materialize(c, now=NOW, horizon_seconds=2 * DAY)
    plan = plan_apply(c, first, {}, now=NOW)
    assert len(plan.create) == len(first) and not plan.update
    table = {e["event_id"]: e for e in plan.to_publish}
    again = materialize(c, now=NOW + 5, horizon_seconds=2 * DAY)
    plan2 = plan_apply(c, again, table, now=NOW + 5)
    assert plan2.to_publish == [] and len(plan2.unchanged) == len(first)


def test_changed_entry_updates_and_prune_cancels_what_is_gone():
    c = cal()
    table = {e["event_id"]: e for e in materialize(c, now=NOW, horizon_seconds=2 * DAY)}
    changed = cal(CALENDAR.replace("factor: 1.8", "factor: 2.0").replace('at: "11:30"', 'at: "20:00"'))
    desired = materialize(changed, now=NOW, horizon_seconds=2 * DAY)
    plan = plan_apply(changed, desired, table, now=NOW, prune=True)
    assert {e["event_id"] for e in plan.update} == {
        "ops.nightly-etl@20250616T020000Z",
        "ops.nightly-etl@20250617T020000Z",
    }
    assert [e["event_id"] for e in plan.create] == ["ops.sunday-patching@20250615T200000Z"]
    # The 11:30 window already started: not pruned (only future occurrences are).
    assert plan.cancel == []
    later = materialize(cal(CALENDAR.replace("  - id: report", "  - id: report-v2")), now=NOW, horizon_seconds=2 * DAY)
    plan = plan_apply(c, later, table, now=NOW, prune=True)
    assert sorted(e["event_id"] for e in plan.cancel) == ["ops.report@20250616T103000Z", "ops.report@20250617T103000Z"]
    assert all(e["cancelled"] for e in plan.cancel)


def test_a_cancelled_occurrence_stays_cancelled():
    c = cal()
    events = materialize(c, now=NOW, horizon_seconds=DAY)
    table = {e["event_id"]: {**e, "cancelled": True} for e in events}
    assert plan_apply(c, events, table, now=NOW).to_publish == []


def test_unquoted_base60_time_is_understood():
    text = "entries:\n  - {id: a, type: custom, daily: {at: 3:00}, duration: 1h, scope: {pools: [p]}}\n"
    (e,) = materialize(load_calendar("c", text=text), now=NOW, horizon_seconds=DAY)
    assert utc(e["starts_at"]) == "2025-06-16 03:00"


def entry(**kw) -> str:
    base = {"id": "x", "type": "peak", "cron": "'0 2 * * *'", "duration": "1h", "scope": "{apps: [a]}", "factor": "2"}
    base.update(kw)
    body = "\n".join(f"    {k}: {v}" for k, v in base.items() if v is not None)
    return "entries:\n  - " + body.lstrip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping with 'entries'"),
        ("entries: []", "'entries' must be a non-empty list"),
        ("entries: [1", "not valid YAML"),
        ("colour: red\nentries: []", "unknown key 'colour'"),
        ("timezone: Mars/Olympus\nentries: []", "unknown time zone 'Mars/Olympus'"),
        (entry(cron="'61 2 * * *'"), "entries[0] (x): cron '61 2 * * *' is not a valid cron expression"),
        (entry(cron=None), "entries[0] (x): give exactly one of cron, daily, weekly (got none)"),
        (entry(daily="'02:00'"), "give exactly one of cron, daily, weekly (got cron, daily)"),
        (entry(cron=None, daily="'25:00'"), "time of day '25:00' is not a valid HH:MM"),
        (entry(cron=None, weekly="{day: someday, at: '03:00'}"), "unknown day 'someday'"),
        (entry(cron=None, weekly="{at: '03:00'}"), "weekly needs 'day' or 'days'"),
        (entry(duration="forever"), "entries[0] (x): duration: cannot read duration 'forever'"),
        (entry(duration="0"), "duration must be positive"),
        (entry(type="outage"), "type 'outage': use maintenance, peak or custom"),
        (entry(scope=None), "'scope' is required"),
        (entry(scope="{racks: [r1]}"), "entries[0] (x): unknown scope 'racks'"),
        (entry(factor="0"), "entries[0] (x): bad factor 0"),
        (entry(factor=None), "a peak needs an expected impact"),
        (entry(id="'a@b'"), "'id' is required"),
        (entry(colour="red"), "entries[0] (x): unknown key 'colour'"),
        (entry(timezone="Nowhere/City"), "unknown time zone 'Nowhere/City'"),
        (entry(deltas="{mem_bytes: lots}"), "deltas.mem_bytes: cannot read size 'lots'"),
        (entry() + "\n" + entry().split("\n", 1)[1], "entries[1] (x): duplicate id 'x'"),
    ],
)
def test_bad_calendars_are_rejected_naming_the_entry(text, message):
    with pytest.raises(CalendarError, match=re.escape(message)):
        load_calendar("cal.yaml", text=text)


def test_missing_file():
    with pytest.raises(CalendarError, match=r"nope\.yaml: cannot read"):
        load_calendar("nope.yaml")
