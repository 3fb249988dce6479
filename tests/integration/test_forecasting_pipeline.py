"""Forecasting through the real broker and a real worker process.

Samples in → forecasts out (keys, horizons, units); a malformed sample goes to the DLQ while the
valid ones keep flowing; a workload that changes node keeps its model; after ``kill -9`` of the
worker the forecasters continue from their snapshots instead of starting cold.
"""

from __future__ import annotations

import math
import os
import signal

import pytest

from tests.integration.kafka_io import produce, read_topic, running, settings_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

T0 = 1_790_000_000.0
STEP = 5.0


def sample(wid: str, k: int, node: str = "n1") -> dict:
    cores = 2.0 + 1.5 * math.sin(k / 12.0) + 0.2 * ((k * 7) % 3)
    return {
        "schema_version": 1, "workload_id": wid, "node_id": node, "kind": "vm", "driver": "sim",
        "sampled_at": T0 + STEP * k, "interval_seconds": STEP, "cpu_cores_used": cores, "cpu_ratio": cores / 8,
        "mem_used_bytes": 2**30 + 2**20 * (k % 10), "io_bytes_per_second": 1000.0 * (k % 5), "priority": 5,
    }  # fmt: skip


def _env(s):
    return settings_env(
        s, PLBA_WORKER_DISPATCH="false", PLBA_FORECAST_HORIZONS="5,30,60", PLBA_FORECAST_SNAPSHOT_SECONDS="30"
    )


def cpu_forecasts(records: list[dict], wid: str) -> list[dict]:
    return [r for r in records if r.get("subject") == wid and r.get("resource") == "cpu"]


def issued(wid: str, k: int):
    """Stop condition: a cpu forecast of ``wid`` issued at sample ``k`` has arrived."""
    return lambda records: any(f["issued_at"] == T0 + STEP * k for f in cpu_forecasts(records, wid))


def test_samples_in_forecasts_out_bad_records_to_dlq_model_follows_the_workload(kafka_settings, tmp_path):
    s = kafka_settings
    with running(["worker"], _env(s), tmp_path / "worker.log") as worker:
        produce(s, "workload_usage", [(b"w1", sample("w1", k)) for k in range(30)])
        produce(s, "workload_usage", [(b"w1", b'{"schema_version": 1, "workload_id": "w1"}')], raw=True)
        # The workload moves to node n2 half way: same series, same model.
        produce(s, "workload_usage", [(b"w1", sample("w1", k, node="n2")) for k in range(30, 60)])
        got = read_topic(s, "forecasts", alive=worker, timeout=90, until=issued("w1", 59))
        dlq = read_topic(s, "dlq", alive=worker, timeout=30, until=lambda r: len(r) >= 1)
    log = (tmp_path / "worker.log").read_text()
    fcs = cpu_forecasts(got, "w1")
    assert fcs, f"no forecast; worker log:\n{log[-3000:]}"
    last = max(fcs, key=lambda f: f["issued_at"])
    assert last["_key"] == b"w1"
    assert last["horizons_seconds"] == [5.0, 30.0, 60.0]
    assert last["unit"] == "cores" and last["subject_kind"] == "workload"
    assert len(last["mean"]) == len(last["lower"]) == len(last["upper"]) == 3
    assert all(lo <= up for lo, up in zip(last["lower"], last["upper"], strict=True))
    assert last["node_id"] == "n2"
    assert last["observations"] == 60, "the move to n2 kept the forecaster (one series, 60 samples)"
    assert {f["resource"] for f in got if f.get("subject") == "w1"} == {"cpu", "memory", "io"}
    assert dlq[0]["error_code"] == "schema_violation" and dlq[0]["processor"] == "forecasting"


def test_worker_kill_9_resumes_from_snapshots_not_cold(kafka_settings, tmp_path):
    s = kafka_settings
    n = 240
    env = _env(s)
    with running(["worker"], env, tmp_path / "worker1.log") as worker:
        produce(s, "workload_usage", [(b"w9", sample("w9", k)) for k in range(n)])
        read_topic(s, "forecasts", alive=worker, timeout=120, until=issued("w9", n - 1))
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    with running(["worker"], env, tmp_path / "worker2.log") as worker:
        produce(s, "workload_usage", [(b"w9", sample("w9", n))])
        after = read_topic(s, "forecasts", alive=worker, timeout=120, until=issued("w9", n))
    log = (tmp_path / "worker2.log").read_text()
    restarted = [f for f in cpu_forecasts(after, "w9") if f["issued_at"] == T0 + STEP * n]
    assert restarted, f"no forecast after the restart; log:\n{log[-3000:]}"
    # Snapshots are taken every 30 s of event time (6 samples): at most that much learning is lost.
    assert restarted[-1]["observations"] >= n - 12, "the forecaster was restored, not relearned from zero"
