"""Event triggers: building and validating events, and the CLI refusing bad input before Kafka."""

from __future__ import annotations

import re

import orjson
import pytest
from click.testing import CliRunner

import plba.cli.trigger_cmd as trigger_cmd
from agents.triggers import TriggerError, build_event, cancel_event, is_active, parse_ids, parse_scope
from plba.cli.main import cli
from schemas.codec import codec

NOW = 1_750_000_000.0
H = 3600.0


def ev(event_type="peak", start=NOW + H, end=NOW + 2 * H, scope=None, **kw):
    return build_event(event_type, starts_at=start, ends_at=end, scope=scope or {"apps": ["etl"]}, now=NOW, **kw)


def test_valid_peak_is_a_contract_event():
    e = ev(factor=1.5, deltas={"cpu_cores": 2, "mem_bytes": 2**30}, reason="nightly import", name="etl")
    codec("event").validate(e)
    assert e["event_type"] == "ingestion_peak"
    assert e["impact"] == {"factor": 1.5, "deltas": {"cpu_cores": 2.0, "mem_bytes": 2**30}}
    assert re.fullmatch(r"peak-[0-9a-f]{16}", e["event_id"])
    assert (e["issued_at"], e["source"]) == (NOW, "cli")


def test_maintenance_and_custom():
    m = ev("maintenance", scope={"nodes": ["n1", "n2"]}, reason="kernel")
    assert m["scope"] == {"nodes": ["n1", "n2"]} and "impact" not in m
    c = ev("custom", scope={"pools": ["blue"]}, name="launch", event_id="launch-1")
    assert c["event_id"] == "launch-1"


def test_a_window_already_started_but_not_over_is_fine():
    assert ev(start=NOW - H, end=NOW + H, factor=2)["starts_at"] == NOW - H


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"end": NOW + H, "start": NOW + 2 * H, "factor": 2}, "the window ends (2025-06-15T16:06:40Z) before or when"),
        ({"end": NOW + H, "start": NOW + H, "factor": 2}, "before or when it starts"),
        ({"start": NOW - 2 * H, "end": NOW - H, "factor": 2}, "the window is in the past: it ended at 2025-06-15T14"),
        ({"factor": 0}, "bad factor 0: give a number in (0, 1000]"),
        ({"factor": -1.5}, "bad factor -1.5"),
        ({"factor": 5000}, "bad factor 5000"),
        ({"factor": float("nan")}, "bad factor nan"),
        ({"deltas": {"cpu_cores": float("inf")}}, "bad cpu_cores delta inf"),
        ({"deltas": {"cpu_cores": 0}}, "a delta must change something"),
        ({"deltas": {"gpus": 1}}, "unknown delta 'gpus'"),
        ({}, "a peak needs an expected impact"),
        ({"scope": {"racks": ["r1"]}, "factor": 2}, "unknown scope 'racks'"),
        ({"scope": {"apps": []}, "factor": 2}, "apps: empty name"),
        ({"scope": {"apps": ["bad name"]}, "factor": 2}, "apps: 'bad name' is not a valid name"),
        ({"event_id": "has space", "factor": 2}, "event id 'has space'"),
    ],
)  # fmt: skip
def test_invalid_events_are_rejected_with_a_message(kwargs, message):
    with pytest.raises(TriggerError, match=re.escape(message)):
        ev(**kwargs)


def test_invalid_type_and_maintenance_scope():
    with pytest.raises(TriggerError, match="unknown event type 'outage'"):
        ev("outage")
    with pytest.raises(TriggerError, match="a maintenance window needs nodes or pools"):
        ev("maintenance", scope={"apps": ["x"]})
    with pytest.raises(TriggerError, match="no scope"):
        build_event("custom", starts_at=NOW + 1, ends_at=NOW + 2, scope={}, now=NOW)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("pools=blue,green", ("pools", ["blue", "green"])), ("node:n1", ("nodes", ["n1"])),
     (" Apps = a , b ,a", ("apps", ["a", "b"]))],
)  # fmt: skip
def test_scope_syntax(spec, expected):
    assert parse_scope(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [("racks=r1", "unknown scope 'racks'"), ("blue", "cannot read scope 'blue'"), ("pools=", "scope pools: empty name"),
     ("pools=a,,b", "empty name"), ("pools=a b", "'a b' is not a valid name")],
)  # fmt: skip
def test_bad_scope_syntax(spec, message):
    with pytest.raises(TriggerError, match=re.escape(message)):
        parse_scope(spec)


def test_parse_ids_dedupes_in_order():
    assert parse_ids("n2, n1,n2", "--nodes") == ["n2", "n1"]


def test_cancel_and_active():
    e = ev(factor=2)
    assert is_active(e, NOW) and not is_active(e, NOW + 3 * H)
    c = cancel_event(e, now=NOW + 10, reason="called off")
    assert c["cancelled"] is True and c["issued_at"] == NOW + 10 and c["reason"] == "called off"
    assert c["event_id"] == e["event_id"] and not is_active(c, NOW)


# --- CLI: invalid input -> exit 2, message, nothing published -------------------------------------
@pytest.fixture
def no_kafka(monkeypatch):
    """Fail the test if a command tries to publish or read."""
    calls = []

    def boom(*args, **kwargs):
        calls.append(args)
        raise AssertionError("Kafka touched")

    monkeypatch.setattr(trigger_cmd, "_publisher", boom)
    monkeypatch.setattr(trigger_cmd, "read_events", boom)
    monkeypatch.setattr(trigger_cmd, "_now", lambda: NOW)
    return calls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["maintenance", "--start", "+1h", "--end", "+2h"], "a maintenance window needs --nodes"),
        (["maintenance", "--nodes", "n1", "--start", "+2h", "--end", "+1h"], "the window ends"),
        (["maintenance", "--nodes", "n1", "--start", "-3h", "--end", "-1h"], "the window is in the past"),
        (["maintenance", "--nodes", "n1", "--start", "soon", "--end", "+1h"], "cannot read time 'soon'"),
        (["maintenance", "--nodes", "n1", "--start", "+1h"], "give exactly one of --end and --duration"),
        (["maintenance", "--nodes", "n1", "--start", "+1h", "--end", "+2h", "--duration", "1h"], "exactly one of"),
        (["maintenance", "--nodes", "n1,,n2", "--start", "+1h", "--end", "+2h"], "--nodes: empty name"),
        (["maintenance", "--nodes", "n1", "--start", "2025-06-01T22:00", "--end", "+2h"], "has no zone"),
        (["peak", "--apps", "etl", "--start", "+1h", "--end", "+2h"], "a peak needs an expected impact"),
        (["peak", "--apps", "etl", "--start", "+1h", "--end", "+2h", "--factor", "lots"], "bad factor 'lots'"),
        (["peak", "--apps", "etl", "--start", "+1h", "--end", "+2h", "--factor", "-2"], "bad factor -2"),
        (["peak", "--apps", "etl", "--start", "+1h", "--end", "+2h", "--cpu-delta", "x"], "bad --cpu-delta 'x'"),
        (["peak", "--apps", "etl", "--start", "+1h", "--end", "+2h", "--memory-delta", "2 gigs"], "cannot read size"),
        (["peak", "--scope", "racks=r1", "--start", "+1h", "--end", "+2h", "--factor", "2"], "unknown scope 'racks'"),
        (["peak", "--start", "+1h", "--end", "+2h", "--factor", "2"], "no scope"),
        (["custom", "--pools", "p", "--start", "+1h", "--duration", "soon"], "cannot read duration 'soon'"),
    ],
)
def test_cli_rejects_invalid_input_with_exit_2_and_publishes_nothing(no_kafka, args, message):
    out = CliRunner().invoke(cli, ["trigger", *args])
    assert out.exit_code == 2, out.output
    assert message in " ".join(out.output.split())
    assert no_kafka == []


def test_cli_apply_rejects_a_bad_calendar_before_kafka(no_kafka, tmp_path):
    f = tmp_path / "cal.yaml"
    f.write_text(
        "entries:\n  - id: x\n    type: peak\n    cron: '61 * * * *'\n    duration: 1h\n    scope: {apps: [a]}\n"
    )
    out = CliRunner().invoke(cli, ["trigger", "apply", str(f)])
    assert out.exit_code == 2
    assert "entries[0] (x): cron '61 * * * *' is not a valid cron expression" in out.output
    assert no_kafka == []


class RecordingPublisher:
    def __init__(self):
        self.sent = []

    def publish(self, type_name, record, headers=()):
        self.sent.append((type_name, record["event_id"], codec(type_name).encode(record), list(headers)))
        return record["event_id"]

    def publish_raw(self, type_name, key, value, headers=()):
        self.sent.append((type_name, key, value, list(headers)))

    def confirm(self, timeout=0):
        pass

    def close(self, timeout=0):
        pass


def test_cli_publishes_a_valid_event_once(monkeypatch):
    pub = RecordingPublisher()
    monkeypatch.setattr(trigger_cmd, "_publisher", lambda s: pub)
    monkeypatch.setattr(trigger_cmd, "_now", lambda: NOW)
    args = ["trigger", "peak", "--pools", "blue", "--apps", "etl", "--start", "+1h", "--duration", "30m",
            "--factor", "1.5", "--memory-delta", "2Gi", "--io-delta", "50M/s", "--json"]  # fmt: skip
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    printed = orjson.loads(out.output)
    ((type_name, key, value, headers),) = pub.sent
    assert type_name == "event" and key == printed["event_id"] and headers == []
    rec = orjson.loads(value)
    assert (rec["starts_at"], rec["ends_at"]) == (NOW + H, NOW + H + 1800)
    assert rec["scope"] == {"apps": ["etl"], "pools": ["blue"]}
    assert rec["impact"] == {"factor": 1.5, "deltas": {"mem_bytes": 2**31, "io_bytes_per_second": 5e7}}


def test_cli_cloudevents_flag_publishes_binary_mode(monkeypatch):
    pub = RecordingPublisher()
    monkeypatch.setattr(trigger_cmd, "_publisher", lambda s: pub)
    monkeypatch.setattr(trigger_cmd, "_now", lambda: NOW)
    out = CliRunner().invoke(
        cli, ["trigger", "maintenance", "--nodes", "n1", "--start", "+1h", "--end", "+2h", "--cloudevents"]
    )
    assert out.exit_code == 0, out.output
    ((_, _key, _value, headers),) = pub.sent
    h = dict(headers)
    assert h["ce_specversion"] == b"1.0" and h["ce_type"] == b"io.plba.event.maintenance"
