"""plba bench migrate: the JSON document and its targets (the runs themselves are integration)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agents.bench_migrate import Sample, summary
from plba.cli.bench_migrate import _table
from plba.cli.main import cli


def samples(*pairs: tuple[float, float]) -> list[Sample]:
    return [Sample(d, t, 1000) for d, t in pairs]


def test_qemu_targets_compare_with_the_raw_bound():
    ok = summary("qemu", 256 << 20, "random", samples((10, 900), (12, 1000), (11, 950)),
                 samples((10, 800), (10, 850), (9, 900)))  # fmt: skip
    assert set(ok) >= {"driver", "runs", "plba_downtime_ms", "raw_downtime_ms", "plba_total_ms", "raw_total_ms"}
    assert ok["runs"] == 3 and ok["plba_downtime_ms"]["p50"] == 11 and ok["raw_total_ms"]["p50"] == 850
    assert ok["targets"]["downtime_p50_ratio"] == pytest.approx(1.1) and ok["targets"]["met"]
    slow = summary("qemu", 256 << 20, "random", samples((10, 1200)), samples((10, 900)))
    assert slow["targets"]["total_p50_overhead_ms"] == 300 and not slow["targets"]["met"]
    json.dumps(ok, allow_nan=False)
    assert "downtime p50 ratio 1.10" in _table(ok) and "MISSED" in _table(slow)


def test_process_target_is_an_absolute_downtime():
    result = summary("process", 10 << 20, "random", samples((40, 300), (120, 320), (60, 310)), samples((45, 45)))
    assert result["targets"]["downtime_p50_ms"] == 60 and result["targets"]["met"]
    assert result["state_bytes"] == 10 << 20 and "memory_bytes" not in result


def test_the_command_checks_its_options():
    out = CliRunner().invoke(cli, ["bench", "migrate", "--driver", "process", "--state", "lots"])
    assert out.exit_code == 2 and "not a size" in out.output
    out = CliRunner().invoke(cli, ["bench", "migrate", "--help"])
    assert out.exit_code == 0 and "--ram-fill" in out.output and "raw QMP" in out.output
