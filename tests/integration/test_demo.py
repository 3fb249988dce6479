"""The README's first command: `plba demo` runs the whole pipeline and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

import orjson
import psutil
import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _demo_processes(prefix: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("PLBA_TOPIC_PREFIX", "") == prefix:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_demo_orders_and_completes_migrations_and_leaves_no_process(kafka_bootstrap, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "plba.cli.main", "demo", "--duration", "60", "--json"],
        capture_output=True, timeout=400, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    result = orjson.loads(proc.stdout)
    assert result["orders"] > 0, result
    assert result["migrations_completed"] > 0, result
    assert result["migrations_failed"] == 0, result
    assert result["dlq_records"] == 0, result
    assert result["forecast_mae"] is not None
    # The summary compares the run with a reactive replay of the load it recorded.
    assert result["reactive_overload_node_seconds"] is not None, result
    assert result["overload_seconds_avoided"] == pytest.approx(
        result["reactive_overload_node_seconds"] - result["overload_node_seconds"], abs=0.01
    )
    assert [m["kind"] for m in result["migrations"] if m["state"] == "completed"] == ["simulated"] * result[
        "migrations_completed"
    ], result
    prefix = result["topic_prefix"]
    assert _demo_processes(prefix) == [], "the demo left processes behind"
