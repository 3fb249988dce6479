"""SLA policies round-trip through the compacted policies topic: set, merge, get, list, resolve, delete."""

from __future__ import annotations

import orjson
import pytest
from agent_kafka_io import read_all
from click.testing import CliRunner

from agents.client import read_table
from agents.sla import resolve_policy
from plba.cli.main import cli

pytestmark = pytest.mark.kafka


def sla(settings, *args):
    opts = ["--kafka-bootstrap", settings.bootstrap, "--topic-prefix", settings.topic_prefix]
    return CliRunner().invoke(cli, ["sla", *args, *opts])


def ok(settings, *args):
    out = sla(settings, *args)
    assert out.exit_code == 0, out.output
    return out.output


def test_policies_round_trip(kafka_settings):
    ok(kafka_settings, "set", "--default", "--priority", "10", "--tier", "bronze", "--max-downtime-ms", "5000")
    ok(kafka_settings, "set", "--user", "ann", "--priority", "40", "--migrations-per-day", "3")
    ok(kafka_settings, "set", "--app", "shop", "--priority", "80", "--tier", "gold")
    ok(kafka_settings, "set", "--app", "shop", "--anti-affinity", "shop-db")  # merged into the app's policy
    ok(kafka_settings, "set", "--workload", "web-1", "--pin", "n7", "--max-downtime-ms", "250")

    shop = orjson.loads(ok(kafka_settings, "get", "--app", "shop", "--json"))
    assert (shop["priority"], shop["tier"], shop["anti_affinity_group"]) == (80, "gold", "shop-db")
    listed = orjson.loads(ok(kafka_settings, "list", "--json"))
    assert [f"{p['subject_kind']}:{p['subject']}" for p in listed] == [
        "app:shop", "default:default", "user:ann", "workload:web-1"
    ]  # fmt: skip

    eff = orjson.loads(ok(kafka_settings, "resolve", "web-1", "--app", "shop", "--user", "ann", "--json"))
    assert (eff["priority"], eff["tier"], eff["max_downtime_seconds"]) == (80, "gold", 0.25)
    assert (eff["migrations_per_day"], eff["pin_node"], eff["can_migrate"]) == (3, "n7", False)
    assert eff["sources"]["max_downtime_seconds"] == "workload:web-1"

    # The table the stream side reads agrees.
    table = read_table(kafka_settings, "policy").records
    assert resolve_policy("web-2", "other", "ann", table).priority == 40

    ok(kafka_settings, "delete", "--app", "shop")
    assert sla(kafka_settings, "get", "--app", "shop").exit_code == 1
    assert resolve_policy("web-1", "shop", "ann", read_table(kafka_settings, "policy").records).priority == 40
    tombstones = [r for r in read_all(kafka_settings, "policies") if r.key == "app:shop" and r.value is None]
    assert len(tombstones) == 1
    assert sla(kafka_settings, "delete", "--app", "shop").exit_code == 1


def test_invalid_policy_publishes_nothing(kafka_settings):
    out = sla(kafka_settings, "set", "--workload", "w1", "--priority", "-3")
    assert out.exit_code == 2 and "priority must be an integer in 0..1000000" in out.output
    out = sla(kafka_settings, "set", "--workload", "w1", "--app", "a", "--priority", "3")
    assert out.exit_code == 2 and "give exactly one of" in out.output
    assert read_all(kafka_settings, "policies") == []
