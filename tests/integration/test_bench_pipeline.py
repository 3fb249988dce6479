"""``plba bench pipeline --json`` on a tiny run through the real broker: every key, positive figures,
and nothing left behind (no topic of its prefixes, no worker process)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import psutil
import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.kafka_io import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KEYS = (
    "samples_per_second", "bound_samples_per_second", "ratio_to_bound", "raw_consume_per_second",
    "model_update_us", "load_samples_per_second",
)  # fmt: skip


def test_tiny_pipeline_bench_reports_every_figure_and_cleans_up(kafka_settings, tmp_path):
    env = dict(os.environ, PLBA_KAFKA_BOOTSTRAP=kafka_settings.bootstrap, PLBA_LOG_LEVEL="WARNING")
    args = [
        sys.executable, "-m", "plba.cli.main", "bench", "pipeline", "--json", "--workloads", "100",
        "--samples-per-workload", "12", "--load-rate", "250", "--load-seconds", "6", "--timeout", "240",
    ]  # fmt: skip
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    result = orjson.loads(done.stdout)
    for key in KEYS:
        assert result[key] > 0, key
    lat = result["decision_latency_ms"]
    assert lat["orders"] >= 1 and lat["p50"] > 0 and lat["p99"] >= lat["p50"]
    assert result["hot_to_order_ms"]["p50"] > 0
    assert result["bound_samples_per_second"] < result["raw_consume_per_second"]
    assert result["ratio_to_bound"] == pytest.approx(
        result["samples_per_second"] / result["bound_samples_per_second"], rel=0.01
    )
    assert result["throughput_records"] == 100 * 12
    assert "stderr" not in done.stdout.decode()  # progress goes to stderr, JSON alone to stdout
    assert b"worker committed" in done.stderr or b"raw consume" in done.stderr
    # Cleaned up: none of its topics (contract ones and the workers' changelogs) and no worker left.
    topics = AdminClient(kafka_settings.confluent_config()).list_topics(timeout=15).topics
    for prefix in result["topic_prefixes"]:
        assert not [t for t in topics if t.startswith(prefix)], prefix
    assert not _processes_with_prefix(result["topic_prefixes"])


def _processes_with_prefix(prefixes: list[str]) -> list[int]:
    """Processes whose PLBA_TOPIC_PREFIX is one of ``prefixes`` (the bench's workers)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PLBA_TOPIC_PREFIX") in prefixes:
                found.append(proc.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found
