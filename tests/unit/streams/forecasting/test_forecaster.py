"""SeriesForecaster: arguments, samples, clamping, warm-up, fallback, state that continues exactly."""

from __future__ import annotations

import json
import math
import random

import pytest

from streams.forecasting import (
    Forecast,
    ForecasterConfig,
    ForecastingError,
    SampleError,
    SeriesForecaster,
    StateError,
)

STEP = 300.0
HORIZONS = (300.0, 1800.0, 3600.0)


def make(**kwargs: object) -> SeriesForecaster:
    args: dict[str, object] = {"step_seconds": STEP, "horizons_seconds": HORIZONS, "upper_bound": 100.0}
    args.update(kwargs)
    return SeriesForecaster(**args)  # type: ignore[arg-type]


def wave(n: int, seed: int = 1, period: int = 288) -> list[float]:
    rng = random.Random(seed)
    return [
        min(
            100.0,
            max(
                0.0, 40 + 20 * math.sin(2 * math.pi * k / period) + rng.gauss(0, 5) + (30 if rng.random() < 0.01 else 0)
            ),
        )
        for k in range(n)
    ]


def feed(f: SeriesForecaster, values: list[float], start: int = 0) -> None:
    for k, v in enumerate(values, start=start):
        f.update(k * STEP, v)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step_seconds": 0}, "step_seconds"),
        ({"step_seconds": float("nan")}, "step_seconds"),
        ({"horizons_seconds": ()}, "horizons"),
        ({"horizons_seconds": "300"}, "horizons"),
        ({"horizons_seconds": (300.0, -1.0)}, "positive"),
        ({"horizons_seconds": (1800.0, 300.0)}, "increasing"),
        ({"upper_bound": 0.0}, "must exceed"),
        ({"upper_bound": float("inf")}, "upper_bound"),
        ({"config": {"coverage": 0.9}}, "ForecasterConfig"),
    ],
)
def test_constructor_validates(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ForecastingError, match=message):
        make(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coverage": 1.0}, "coverage"),
        ({"ma_windows": (0,)}, "ma_windows"),
        ({"ewma_alphas": (2.0,)}, "smoothing"),
        ({"top_k": 0}, "top_k"),
        ({"score_every": 0}, "score_every"),
        ({"demote_ratio": 1.0}, "demote_ratio"),
        ({"interval_lr": -1.0}, "lr"),
        ({"event_learn_rate": 0.0}, "learn_rate"),
    ],
)
def test_config_validates(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ForecastingError, match=message):
        ForecasterConfig(**kwargs)  # type: ignore[arg-type]


def test_horizons_become_steps() -> None:
    f = make(step_seconds=5.0, horizons_seconds=(2.0, 60.0, 301.0))
    assert f.horizons_steps == (1, 12, 60)


def test_bad_samples_raise_and_leave_state_unchanged() -> None:
    f = make()
    feed(f, wave(50))
    before = f.to_state()
    for at, value in ((50 * STEP, float("nan")), (50 * STEP, float("inf")), (10 * STEP, 5.0), (float("nan"), 5.0)):
        with pytest.raises(SampleError):
            f.update(at, value)
    assert f.to_state() == before
    with pytest.raises(ForecastingError):
        make().forecast(0.0)  # nothing learned yet
    with pytest.raises(ForecastingError):
        f.forecast(3 * STEP)  # before the last sample


def test_forecast_shape_and_bounds() -> None:
    f = make(upper_bound=60.0, lower_bound=10.0)
    values = [min(100.0, v * 1.5) for v in wave(600)]
    for k, v in enumerate(values):
        f.update(k * STEP, v)
        fc = f.forecast(k * STEP)
        assert isinstance(fc, Forecast)
        assert len(fc.mean) == len(fc.lower) == len(fc.upper) == len(HORIZONS) == len(fc.models)
        for lo, m, hi in zip(fc.lower, fc.mean, fc.upper, strict=True):
            assert all(math.isfinite(x) and 10.0 <= x <= 60.0 for x in (lo, m, hi))
            assert lo <= hi
    assert fc.issued_at == 599 * STEP and fc.horizons_seconds == HORIZONS and fc.step_seconds == STEP


def test_warm_up_then_reliable_on_a_predictable_series() -> None:
    f = make()
    feed(f, wave(10))
    young = f.forecast(9 * STEP)
    assert not young.reliable and young.recent_mae is None and young.coverage is None
    feed(f, wave(1500)[10:], start=10)
    grown = f.forecast(1499 * STEP)
    assert grown.reliable
    assert grown.recent_mae is not None and grown.recent_mae > 0
    assert grown.coverage is not None and 0.75 < grown.coverage <= 1.0
    assert grown.model not in ("reactive", "last_value")


def test_reactive_fallback_when_nothing_beats_last_value() -> None:
    # A random walk: the last value is the best forecast; averaging models lose to it at every
    # horizon, so after warm-up the forecaster must fall back to it (or use it as the model).
    rng = random.Random(4)
    level, values = 50.0, []
    for _ in range(3000):
        level = min(95.0, max(5.0, level + rng.gauss(0, 3)))
        values.append(level)
    f = make(config=ForecasterConfig(snarimax=False, holt_winters=False))
    naive_err, plba_err = 0.0, 0.0
    pending: dict[int, float] = {}
    for k, v in enumerate(values):
        if k in pending:
            plba_err += abs(v - pending.pop(k))
            naive_err += abs(v - values[k - 12])
        f.update(k * STEP, v)
        fc = f.forecast(k * STEP)
        if k >= 500:
            pending[k + 12] = fc.mean[2]
    assert plba_err <= 1.02 * naive_err
    last = f.forecast(2999 * STEP)
    assert last.model == "reactive" or "last_value" in last.model


def test_lagged_forecast_counts_from_the_last_sample() -> None:
    f = make(config=ForecasterConfig(snarimax=False))
    feed(f, wave(400))
    now = f.forecast(399 * STEP)
    later = f.forecast(402 * STEP)  # three steps without a sample
    assert later.issued_at == 402 * STEP
    assert all(math.isfinite(x) for x in later.mean)
    assert later.reliable == now.reliable
    stale = f.forecast(399 * STEP + 20 * STEP)
    assert not stale.reliable  # more than the longest horizon without data


def test_state_is_json_safe_and_versioned() -> None:
    f = make()
    feed(f, wave(700))
    state = f.to_state()
    text = json.dumps(state, allow_nan=False)
    assert "pickle" not in text
    assert state["format"] == "plba.series_forecaster" and state["version"] == 1
    with pytest.raises(StateError):
        SeriesForecaster.from_state({**state, "version": 99})
    with pytest.raises(StateError):
        SeriesForecaster.from_state({**state, "models": state["models"][:-1]})
    with pytest.raises(StateError):
        SeriesForecaster.from_state({"format": "something else"})
    broken = json.loads(text)
    broken["selector"]["long"] = [[0.0]]
    with pytest.raises(StateError):
        SeriesForecaster.from_state(broken)


@pytest.mark.parametrize("cut", [5, 150, 333, 2100])
def test_restored_forecaster_continues_exactly(cut: int) -> None:
    values = wave(2600, seed=8)
    config = ForecasterConfig(sleep_after=500)  # so a sleeping SNARIMAX is part of the state too
    uninterrupted = make(config=config)
    restored = make(config=config)
    for k, v in enumerate(values):
        if k == cut:
            restored = SeriesForecaster.from_state(json.loads(json.dumps(restored.to_state())))
        if k % 97 == 13:
            continue  # gaps as well
        at = k * STEP
        uninterrupted.update(at, v)
        restored.update(at, v)
        assert restored.forecast(at) == uninterrupted.forecast(at), k
    assert restored.to_state() == uninterrupted.to_state()


def test_expensive_candidate_sleeps_when_never_chosen() -> None:
    # A constant-ish series: cheap smoothers are perfect, SNARIMAX never earns a place.
    f = make(config=ForecasterConfig(sleep_after=300, sleep_below_share=0.5))
    feed(f, [20.0 + (k % 2) * 0.01 for k in range(1300)])
    assert "snarimax" in f.sleeping
    assert all(math.isfinite(x) for x in f.forecast(1299 * STEP).mean)


def test_redelivered_sample_is_learned_once() -> None:
    once, twice = make(), make()
    for k, v in enumerate(wave(300)):
        once.update(k * STEP, v)
        twice.update(k * STEP, v)
        twice.update(k * STEP, v + 50.0)  # the same instant again: ignored
    assert twice.to_state() == once.to_state()


def test_expensive_candidate_sleeps_when_no_better_than_cheap_ones() -> None:
    # The share rule is off (0): it sleeps because it never beats the best cheap candidate by 2 %.
    noisy = [50.0 + 10.0 * ((k * 7919) % 13 - 6) / 6 for k in range(1300)]  # white-ish noise
    f = make(config=ForecasterConfig(sleep_after=400, sleep_below_share=0.0, sleep_margin=0.02))
    feed(f, noisy)
    assert "snarimax" in f.sleeping
