"""``plba bench agent`` runs end to end against the real broker and reports consistent figures."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from plba.cli.main import cli

pytestmark = pytest.mark.kafka


def test_bench_agent_json(kafka_settings):
    args = ["bench", "agent", "--workloads", "5", "--interval", "0.5", "--seconds", "2", "--rate-records", "2000",
            "--json", "--kafka-bootstrap", kafka_settings.bootstrap]  # fmt: skip
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    result = orjson.loads(out.output)
    smp, rate = result["sampling"], result["producer"]
    assert smp["samples"] >= 2 and smp["skipped_ticks"] == 0
    assert smp["records_published"] == smp["samples"] * (5 + 1) and smp["records_unconfirmed"] == 0
    assert smp["cpu_seconds_per_sample"] > 0 and smp["cpu_seconds_per_workload_sample"] > 0
    assert rate["delivered"] == 2000 and rate["unconfirmed"] == 0 and rate["records_per_second"] > 0
