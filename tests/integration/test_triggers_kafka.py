"""Triggers round-trip through the real broker: CLI, CloudEvents from a third party, calendars."""

from __future__ import annotations

import time

import orjson
import pytest
from agent_kafka_io import read_all
from click.testing import CliRunner
from confluent_kafka import Producer

from agents.client import RecordPublisher
from agents.triggers import build_event, publish_event, read_events
from plba.cli.main import cli

pytestmark = pytest.mark.kafka


def run(settings, *args):
    opts = ["--kafka-bootstrap", settings.bootstrap, "--topic-prefix", settings.topic_prefix]
    out = CliRunner().invoke(cli, ["trigger", *args, *opts])
    return out


def listed(settings, *flags):
    out = run(settings, "list", "--json", *flags)
    assert out.exit_code == 0, out.output
    return {e["event_id"]: e for e in orjson.loads(out.output)}


def test_cli_triggers_round_trip_and_cancel(kafka_settings):
    m = run(kafka_settings, "maintenance", "--nodes", "n1,n2", "--start", "+1h", "--duration", "2h",
            "--reason", "kernel upgrade", "--json")  # fmt: skip
    assert m.exit_code == 0, m.output
    maint = orjson.loads(m.output)
    p = run(kafka_settings, "peak", "--apps", "etl", "--pools", "blue", "--start", "+10m", "--end", "+40m",
            "--factor", "1.5", "--cpu-delta", "2", "--cloudevents", "--json")  # fmt: skip
    assert p.exit_code == 0, p.output
    peak = orjson.loads(p.output)

    events = listed(kafka_settings)
    assert events[maint["event_id"]] == maint
    assert events[peak["event_id"]] == peak  # the CloudEvent decodes to the same record
    raw = {r.key: r for r in read_all(kafka_settings, "events")}
    assert dict(raw[peak["event_id"]].headers)["ce_type"] == b"io.plba.event.ingestion_peak"

    c = run(kafka_settings, "cancel", maint["event_id"], "--reason", "postponed")
    assert c.exit_code == 0, c.output
    assert maint["event_id"] not in listed(kafka_settings, "--active")
    everything = listed(kafka_settings)
    assert everything[maint["event_id"]]["cancelled"] is True
    assert everything[maint["event_id"]]["reason"] == "postponed"
    assert peak["event_id"] in listed(kafka_settings, "--active")

    assert run(kafka_settings, "cancel", "no-such-event").exit_code == 1


def test_invalid_input_publishes_nothing(kafka_settings):
    before = len(read_all(kafka_settings, "events"))
    out = run(kafka_settings, "peak", "--apps", "etl", "--start", "+2h", "--end", "+1h", "--factor", "2")
    assert out.exit_code == 2 and "the window ends" in out.output
    out = run(kafka_settings, "maintenance", "--nodes", "n1", "--start", "-2h", "--end", "-1h")
    assert out.exit_code == 2 and "the window is in the past" in out.output
    assert len(read_all(kafka_settings, "events")) == before


def test_third_party_cloudevent_is_listed(kafka_settings):
    now = time.time()
    data = {"starts_at": now + 600, "ends_at": now + 1200, "scope": {"pools": ["green"]}, "name": "launch"}
    p = Producer(kafka_settings.confluent_config())
    p.produce(
        kafka_settings.topic("events"),
        key=b"launch-2025",
        value=orjson.dumps(data),
        headers=[("ce_specversion", b"1.0"), ("ce_id", b"42"), ("ce_source", b"//ci"),
                 ("ce_type", b"io.plba.event.custom"), ("content-type", b"application/json")],
    )  # fmt: skip
    p.produce(kafka_settings.topic("events"), key=b"garbage", value=b"{not json")
    assert p.flush(30) == 0
    table = read_events(kafka_settings, now=now)
    event = table.records["launch-2025"]
    assert (event["event_type"], event["name"], event["source"]) == ("custom", "launch", "cloudevents")
    assert event["event_id"].startswith("ce-")
    assert [reason for _p, _o, reason in table.invalid] and "garbage" not in table.records


def test_calendar_apply_is_idempotent(kafka_settings, tmp_path):
    cal = tmp_path / "ops.yaml"
    cal.write_text(
        "calendar: ops\n"
        "entries:\n"
        "  - {id: nightly, type: peak, cron: '0 2 * * *', duration: 1h, scope: {apps: [etl]}, factor: 1.8}\n"
        "  - {id: patching, type: maintenance, weekly: {day: sun, at: '03:00'}, duration: 2h, scope: {nodes: [n1]}}\n"
    )
    first = run(kafka_settings, "apply", str(cal), "--horizon", "14d", "--json")
    assert first.exit_code == 0, first.output
    summary = orjson.loads(first.output)
    assert summary["created"] == 14 + 2 and summary["unchanged"] == 0
    records_after_first = len(read_all(kafka_settings, "events"))
    second = run(kafka_settings, "apply", str(cal), "--horizon", "14d", "--json")
    assert second.exit_code == 0, second.output
    assert orjson.loads(second.output)["created"] == 0 and orjson.loads(second.output)["unchanged"] == 16
    assert len(read_all(kafka_settings, "events")) == records_after_first  # nothing published again
    events = listed(kafka_settings)
    assert sum(1 for e in events.values() if e.get("recurrence_id") == "ops.nightly") == 14
    # Removing an entry and applying with --prune cancels its future occurrences.
    cal.write_text(cal.read_text().split("  - {id: patching")[0])
    pruned = run(kafka_settings, "apply", str(cal), "--horizon", "14d", "--prune", "--json")
    assert orjson.loads(pruned.output)["cancelled"] == 2
    active = listed(kafka_settings, "--active")
    assert not any(e.get("recurrence_id") == "ops.patching" for e in active.values())


def test_api_publisher_round_trip(kafka_settings):
    now = time.time()
    event = build_event("custom", starts_at=now + 60, ends_at=now + 120, scope={"users": ["ann"]}, now=now,
                        name="api", event_id="api-evt-1")  # fmt: skip
    with RecordPublisher(kafka_settings) as pub:
        publish_event(pub, event)
        pub.confirm(30)
    assert read_events(kafka_settings).records["api-evt-1"] == event
