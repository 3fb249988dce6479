"""The forecasting stage: usage records → forecast records that satisfy the contract."""

from __future__ import annotations

import math

import pytest

from schemas.codec import codec
from streams.live.forecast_stage import ForecastStage, model_name

T0 = 1_790_000_000.0


def wl(k: int, node: str = "n1", app: str = "shop") -> dict:
    cores = 2 + math.sin(k / 5)
    return {
        "schema_version": 1, "workload_id": "w", "node_id": node, "kind": "vm", "driver": "sim",
        "sampled_at": T0 + 5 * k, "interval_seconds": 5.0, "cpu_cores_used": cores, "cpu_ratio": cores / 8,
        "mem_used_bytes": 2**30, "io_bytes_per_second": 100.0, "app": app,
    }  # fmt: skip


def test_every_forecast_record_passes_the_contract_and_uses_absolute_units():
    stage = ForecastStage((5.0, 30.0, 60.0))
    recs = [r for k in range(40) for r in stage.on_workload_usage(wl(k))]
    assert recs
    forecast = codec("forecast")
    for r in recs:
        forecast.validate(r)
    cpu = [r for r in recs if r["resource"] == "cpu"]
    assert cpu[-1]["unit"] == "cores" and max(cpu[-1]["upper"]) <= 8.0  # clamped to the node's 8 cores
    assert {r["resource"] for r in recs} == {"cpu", "memory", "io"}


def test_forecast_interval_decouples_forecasting_from_ingest():
    stage = ForecastStage((5.0,), forecast_interval_seconds=30.0)
    recs = [r for k in range(60) for r in stage.on_workload_usage(wl(k)) if r["resource"] == "cpu"]
    assert 9 <= len(recs) <= 11  # one every 30 s of event time over 300 s


def test_declared_peak_adjusts_the_forecast_inside_its_window():
    plain, peaked = ForecastStage((30.0,)), ForecastStage((30.0,))
    peaked.on_event({
        "event_id": "peak-1", "event_type": "ingestion_peak", "starts_at": T0 + 5 * 50, "ends_at": T0 + 5 * 80,
        "scope": {"apps": ["shop"]}, "impact": {"factor": 2.0},
    })  # fmt: skip
    for k in range(48):
        a = plain.on_workload_usage(wl(k))
        b = peaked.on_workload_usage(wl(k))
    ca = next(r for r in a if r["resource"] == "cpu")
    cb = next(r for r in b if r["resource"] == "cpu")
    assert cb["mean"][0] > 1.5 * ca["mean"][0]
    adj = cb["event_adjustments"][0]
    assert adj["event_id"] == "peak-1" and adj["applied_factor"] == 2.0 and adj["declared_factor"] == 2.0


def test_snapshots_restore_a_series_that_continues_exactly():
    a = ForecastStage((5.0, 30.0))
    for k in range(50):
        a.on_workload_usage(wl(k))
    snaps = a.due_snapshots("w", T0 + 5 * 49)
    assert {key[1] for key, _ in snaps} == {"cpu", "memory", "io"}
    b = ForecastStage((5.0, 30.0))
    assert b.needs_restore("w")
    for key, state in snaps:
        assert b.restore(key, state)
    ra = a.on_workload_usage(wl(50))
    rb = b.on_workload_usage(wl(50))
    assert [r["mean"] for r in ra] == [r["mean"] for r in rb]
    assert a.due_snapshots("w", T0 + 5 * 50) == [], "not due again within the snapshot interval"


def test_unusable_snapshot_is_refused_not_fatal():
    stage = ForecastStage((5.0,))
    assert stage.restore(("w", "cpu"), {"format": "pickle", "payload": "gASV"}) is False


def test_out_of_order_sample_is_skipped_and_idle_series_evicted():
    stage = ForecastStage((5.0,), ttl_seconds=60.0)
    stage.on_workload_usage(wl(10))
    assert stage.on_workload_usage(wl(3)) == []
    assert stage.evict_idle(T0 + 5 * 10 + 61) == 3
    assert len(stage.bank) == 0


@pytest.mark.parametrize(("raw", "clean"), [("ewma0.3+ma6", "ewma0.3-ma6"), ("Reactive", "reactive"), ("", "reactive")])
def test_model_names_fit_the_contract(raw, clean):
    assert model_name(raw) == clean


@pytest.mark.parametrize(
    ("interval", "step"), [(1.0042, 1.0), (0.9958, 1.0), (5.03, 5.0), (299.7, 300.0), (0.25, 0.25)]
)
def test_measured_intervals_snap_to_whole_seconds(interval, step):
    from streams.live.forecast_stage import sampling_step

    assert sampling_step(interval) == step
