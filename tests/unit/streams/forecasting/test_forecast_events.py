"""Events inside the forecast: declared adjustment, learned effect used next time, clean baseline."""

from __future__ import annotations

import json

import pytest

from streams.forecasting import ActiveEvent, EventEffects, ForecasterConfig, ForecastingError, SeriesForecaster

STEP = 60.0
CHEAP = ForecasterConfig(snarimax=False, season_seconds=None)


def make() -> SeriesForecaster:
    return SeriesForecaster(step_seconds=STEP, horizons_seconds=(60.0, 600.0), upper_bound=100.0, config=CHEAP)


def flat(f: SeriesForecaster, start: int, stop: int, value: float = 20.0, events: tuple[ActiveEvent, ...] = ()) -> None:
    for k in range(start, stop):
        f.update(k * STEP, value, events)


def test_event_validation() -> None:
    with pytest.raises(ForecastingError):
        ActiveEvent("peak", "wl", 10.0, 10.0)
    with pytest.raises(ForecastingError):
        ActiveEvent("peak", "wl", 0.0, 10.0, factor=0.0)
    with pytest.raises(ForecastingError):
        ActiveEvent("", "wl", 0.0, 10.0)
    with pytest.raises(ForecastingError):
        EventEffects(learn_rate=0.0)


def test_declared_factor_and_delta_apply_inside_the_window_only() -> None:
    f = make()
    flat(f, 0, 200)
    now = 199 * STEP
    base = f.forecast(now)
    assert base.event is None
    # The window starts 5 minutes ahead: the 1-minute horizon is outside, the 10-minute one inside.
    peak = ActiveEvent("ingestion_peak", "wl-1", now + 300.0, now + 3600.0, factor=2.0, delta=5.0)
    fc = f.forecast(now, [peak])
    assert fc.mean[0] == pytest.approx(base.mean[0])
    assert fc.mean[1] == pytest.approx(base.mean[1] * 2.0 + 5.0)
    assert fc.upper[1] == pytest.approx(min(100.0, base.upper[1] * 2.0 + 5.0))
    assert fc.event is not None
    assert fc.event["source"] == "declared" and fc.event["factor"] == 2.0 and fc.event["delta"] == 5.0
    assert fc.event["affected_horizons"] == [False, True]
    # Clamped to the physical bound.
    huge = ActiveEvent("ingestion_peak", "wl-1", now, now + 3600.0, factor=50.0)
    assert max(f.forecast(now, [huge]).mean) == 100.0


def test_effect_is_learned_and_used_next_time() -> None:
    f = make()
    flat(f, 0, 300, 20.0)
    # Declared x1.5, but the load really triples inside the window.
    first = ActiveEvent("ingestion_peak", "wl-1", 300 * STEP, 330 * STEP, factor=1.5)
    flat(f, 300, 330, 60.0, (first,))
    flat(f, 330, 400, 20.0, (first,))  # the window is over: the occurrence is closed and learned
    # After the peak the models are back on the normal level: they learned the deflated values.
    assert f.forecast(399 * STEP).mean[1] == pytest.approx(20.0, abs=0.5)
    second = ActiveEvent("ingestion_peak", "wl-1", 400 * STEP, 430 * STEP, factor=1.5)
    fc = f.forecast(399 * STEP, [second])
    assert fc.event is not None
    assert fc.event["source"] == "learned"
    assert fc.event["learned_factor"] == pytest.approx(3.0, rel=0.05)
    assert fc.event["learned_count"] == 1
    assert fc.mean[1] == pytest.approx(60.0, rel=0.06)
    # Another subject, same kind: nothing learned for it, the declaration applies.
    other = ActiveEvent("ingestion_peak", "wl-2", 400 * STEP, 430 * STEP, factor=1.5)
    assert f.forecast(399 * STEP, [other]).event["source"] == "declared"  # type: ignore[index]


def test_learned_effect_survives_a_restart_and_is_smoothed() -> None:
    fx = EventEffects(learn_rate=0.5)
    for ratio, start in ((3.0, 0.0), (2.0, 100.0)):
        event = ActiveEvent("batch", "node-1", start, start + 50.0, factor=1.2)
        fx.observe(start, 10.0 * ratio, [event], baseline=10.0)
        fx.observe(start + 10.0, 10.0 * ratio, [event], baseline=10.0)
        assert fx.close_due(start + 50.0) == 1
    restored = EventEffects.from_state(json.loads(json.dumps(fx.to_state())), learn_rate=0.5)
    probe = ActiveEvent("batch", "node-1", 500.0, 600.0)
    assert restored.effect(probe) == (pytest.approx(2.5), 0.0, "learned")


def test_no_learning_against_a_zero_baseline() -> None:
    fx = EventEffects()
    event = ActiveEvent("batch", "idle-vm", 0.0, 10.0, factor=2.0)
    fx.observe(1.0, 5.0, [event], baseline=0.0)
    assert fx.close_due(10.0) == 0
    assert fx.effect(event)[2] == "declared"


def test_event_state_round_trips_inside_a_forecaster() -> None:
    f = make()
    flat(f, 0, 100)
    event = ActiveEvent("ingestion_peak", "wl-1", 100 * STEP, 120 * STEP, factor=2.0)
    flat(f, 100, 110, 40.0, (event,))
    copy = SeriesForecaster.from_state(json.loads(json.dumps(f.to_state())))
    flat(f, 110, 150, 40.0, (event,))
    flat(copy, 110, 150, 40.0, (event,))
    assert copy.forecast(149 * STEP, [event]) == f.forecast(149 * STEP, [event])
