"""``plba bench faults --json`` with small sizes: every field measured, consistent, nothing left behind.

Runs the bad-input and worker ``kill -9`` scenarios: this is also the worker-kill test (the
whole pipeline, killed mid-stream and restarted: forecasts continue from restored state, no sample
lost, no order carried out twice).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import psutil
import pytest
from confluent_kafka.admin import AdminClient

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FIELDS = (
    "trials", "samples_lost", "duplicate_migrations", "instances_not_exactly_one", "bad_records_injected",
    "bad_records_in_dlq", "valid_records_processed", "valid_records_injected", "valid_records_in_dlq",
    "worker_crashes", "samples_sent", "samples_unprocessed", "forecast_series_cold", "scenario_errors",
)  # fmt: skip
OUR_PREFIXES = ("bench-inject-", "bench-wkill-")


def _under(root: Path) -> list[psutil.Process]:
    """Live processes started in ``root`` (the bench runs its workers and nodes there)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if Path(p.cwd()).is_relative_to(root):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _our_topics(settings) -> set[str]:
    topics = AdminClient(settings.confluent_config()).list_topics(timeout=30).topics
    return {t for t in topics if t.startswith(OUR_PREFIXES)}


def test_bench_faults_json_fields_consistent_and_cleaned_up(base_settings, kafka_bootstrap, tmp_path):
    s = base_settings.replace(kafka_bootstrap=kafka_bootstrap)
    before = _our_topics(s)
    logs = tmp_path / "logs"
    proc = subprocess.run(
        [sys.executable, "-m", "plba.cli.main", "bench", "faults", "--json", "--scenarios", "bad-input,worker-kill",
         "--bad-records", "40", "--phase-seconds", "10", "--keep-logs", str(logs), "--kafka-bootstrap", s.bootstrap],
        capture_output=True, timeout=1200, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-4000:]
    r = orjson.loads(proc.stdout)
    missing = [f for f in FIELDS if f not in r]
    assert not missing, (missing, r)
    assert r["trials"] == 1 and r["scenario_errors"] == 0, r
    assert r["bad_records_injected"] == 40 * 5 and r["bad_records_in_dlq"] == r["bad_records_injected"], r
    assert r["valid_records_in_dlq"] == 0 and r["valid_records_processed"] >= r["valid_records_injected"] > 0, r
    assert r["samples_sent"] > 0 and r["samples_lost"] == 0 and r["samples_unprocessed"] == 0, r
    assert r["duplicate_migrations"] == 0 and r["instances_not_exactly_one"] == 0, r
    assert r["samples_on_topics"] == r["samples_sent"] and r["samples_duplicated"] == 0, r
    reasons = [s.get("worker_crash_reasons") for s in r["scenarios"].values()]
    assert r["worker_crashes"] == 0 and r["worker_kills"] == 1, reasons
    assert r["migrations_after_faults"] >= 1, r  # orders are carried out after the restart
    # The restarted worker's forecasters continued from their snapshots (a cold one restarts at 1).
    assert r["forecast_series_compared"] > 0 and r["forecast_series_cold"] == 0, r
    assert set(r["scenarios"]) == {"bad-input", "worker-kill"}
    assert all("error" not in v for v in r["scenarios"].values()), r["scenarios"]
    # Progress went to stderr, the JSON alone to stdout.
    assert b"== bad-input" in proc.stderr
    # Everything it started is gone: processes, and the topics of its private prefixes.
    assert _under(logs) == []
    assert _our_topics(s) - before == set()
