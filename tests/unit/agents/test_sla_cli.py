"""``plba sla``: invalid input exits 2 with a message and touches no Kafka; merging semantics."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

import plba.cli.sla_cmd as sla_cmd
from agents.client import Table
from plba.cli.main import cli


@pytest.fixture
def no_kafka(monkeypatch):
    calls = []

    def boom(*args, **kwargs):
        calls.append(args)
        raise AssertionError("Kafka touched")

    monkeypatch.setattr(sla_cmd, "_publisher", boom)
    monkeypatch.setattr(sla_cmd, "read_table", boom)
    return calls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--priority", "5"], "give exactly one of --workload, --app, --user, --default"),
        (["--app", "a", "--user", "u", "--priority", "5"], "give exactly one of"),
        (["--app", "a"], "nothing to set"),
        (["--app", "a", "--priority", "-1"], "priority must be an integer in 0..1000000"),
        (["--app", "a", "--priority", "high"], "'high' is not a valid integer"),
        (["--app", "a", "--max-downtime-ms", "-5"], "max downtime must be a number of seconds >= 0"),
        (["--app", "a", "--migrations-per-day", "-1"], "migrations per day must be an integer in 0..100000"),
        (["--app", "a", "--tier", "Gold!"], "tier 'Gold!'"),
        (["--app", "bad name", "--priority", "1"], "app 'bad name'"),
        (["--workload", "w", "--pin", "n1", "--unpin"], "--pin and --unpin contradict each other"),
        (["--workload", "w", "--pin", "bad node"], "pin node 'bad node'"),
    ],
)
def test_invalid_set_exits_2_and_publishes_nothing(no_kafka, args, message):
    out = CliRunner().invoke(cli, ["sla", "set", *args])
    assert out.exit_code == 2, out.output
    assert message in " ".join(out.output.split())
    assert no_kafka == []


class FakePublisher:
    def __init__(self):
        self.sent = []

    def publish(self, type_name, record, headers=()):
        self.sent.append((f"{record['subject_kind']}:{record['subject']}", record))

    def publish_raw(self, type_name, key, value, headers=()):
        self.sent.append((key, value))

    def confirm(self, timeout=0):
        pass

    def close(self, timeout=0):
        pass


@pytest.fixture
def fake_kafka(monkeypatch):
    pub = FakePublisher()
    table = Table("t.policies.v1")
    monkeypatch.setattr(sla_cmd, "_publisher", lambda s: pub)
    monkeypatch.setattr(sla_cmd, "read_table", lambda *a, **k: table)
    monkeypatch.setattr(sla_cmd, "_now", lambda: 100.0)
    return pub, table


def test_set_merges_into_the_existing_policy(fake_kafka):
    pub, table = fake_kafka
    table.records["app:shop"] = {"schema_version": 1, "subject_kind": "app", "subject": "shop", "priority": 80,
                                 "tier": "gold", "updated_at": 1.0}  # fmt: skip
    out = CliRunner().invoke(cli, ["sla", "set", "--app", "shop", "--max-downtime-ms", "250", "--json"])
    assert out.exit_code == 0, out.output
    ((key, rec),) = pub.sent
    assert key == "app:shop"
    assert rec == {"schema_version": 1, "subject_kind": "app", "subject": "shop", "priority": 80, "tier": "gold",
                   "max_downtime_seconds": 0.25, "updated_at": 100.0}  # fmt: skip
    assert orjson.loads(out.output) == rec


def test_replace_and_default(fake_kafka):
    pub, table = fake_kafka
    table.records["default:default"] = {"schema_version": 1, "subject_kind": "default", "subject": "default",
                                        "tier": "bronze", "updated_at": 1.0}  # fmt: skip
    out = CliRunner().invoke(cli, ["sla", "set", "--default", "--priority", "10", "--not-migratable", "--replace"])
    assert out.exit_code == 0, out.output
    assert pub.sent[0][1] == {"schema_version": 1, "subject_kind": "default", "subject": "default", "priority": 10,
                              "migratable": False, "updated_at": 100.0}  # fmt: skip


def test_delete_is_a_tombstone_and_missing_is_an_error(fake_kafka):
    pub, table = fake_kafka
    out = CliRunner().invoke(cli, ["sla", "delete", "--user", "ann"])
    assert out.exit_code == 1 and "no policy for user:ann" in out.output
    table.records["user:ann"] = {"schema_version": 1, "subject_kind": "user", "subject": "ann", "updated_at": 1.0}
    out = CliRunner().invoke(cli, ["sla", "delete", "--user", "ann"])
    assert out.exit_code == 0 and pub.sent == [("user:ann", None)]


def test_resolve_shows_sources(fake_kafka):
    _, table = fake_kafka
    table.records["app:shop"] = {"schema_version": 1, "subject_kind": "app", "subject": "shop", "priority": 80,
                                 "updated_at": 1.0}  # fmt: skip
    table.records["workload:w1"] = {"schema_version": 1, "subject_kind": "workload", "subject": "w1",
                                    "pin_node": "n3", "updated_at": 1.0}  # fmt: skip
    out = CliRunner().invoke(cli, ["sla", "resolve", "w1", "--app", "shop", "--json"])
    got = orjson.loads(out.output)
    assert (got["priority"], got["pin_node"], got["can_migrate"]) == (80, "n3", False)
    assert got["sources"]["priority"] == "app:shop" and got["sources"]["pin_node"] == "workload:w1"
