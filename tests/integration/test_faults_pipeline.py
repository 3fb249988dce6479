"""The whole pipeline survives a broker restart, counted.

Worker, dispatcher, four ``plba node`` processes with telemetry and ``sim`` workloads that migrate
(the demo's layout), on a private broker that is stopped and started again. After the restart the
pipeline must complete a migration again; at the end no telemetry sample is lost or duplicated,
the worker processed every one, no order was carried out twice and every workload runs on exactly
one node. (The worker ``kill -9`` scenario runs in test_bench_faults.py, through the command.)
"""

from __future__ import annotations

import shutil

import pytest

from plba import localkafka
from plba.faults.pipeline import run_broker_restart

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _assert_survived(r: dict) -> None:
    assert r["worker_crashes"] == 0, r.get("worker_crash_reasons")
    assert r["migrations_after_faults"] >= 1, r  # the pipeline works after the fault
    assert r["duplicate_migrations"] == 0, r
    assert r["instances_not_exactly_one"] == 0, r
    assert r["samples_sent"] > 0 and r["samples_lost"] == 0, r
    assert r["samples_on_topics"] == r["samples_sent"] and r["samples_duplicated"] == 0, r
    assert r["producer_reported_losses"] == 0, r
    assert r["samples_unprocessed"] == 0, r


def test_broker_restart_loses_no_sample_and_duplicates_no_migration(base_settings, tmp_path):
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    if not localkafka.paths(base_settings).libs.is_dir():
        pytest.skip("Kafka jars are not cached (plba kafka up fetches them)")
    r = run_broker_restart(base_settings, tmp_path, trials=1, phase_seconds=10, outage_seconds=8)
    _assert_survived(r)
    assert r["broker_restarts"] == 1
