"""Online conformal intervals: coverage on synthetic noise, adaptation, ties and bounds."""

from __future__ import annotations

import random

import pytest

from streams.forecasting import ForecasterConfig, SeriesForecaster
from streams.forecasting.conformal import HorizonInterval
from streams.forecasting.errors import ForecastingError


def run(tracker: HorizonInterval, draws: list[float], mean: float = 0.0) -> float:
    """Feed values around a fixed point forecast; return the fraction covered after warm-up."""
    hits = 0
    counted = 0
    for k, y in enumerate(draws):
        low, high = mean + tracker.q_lo, mean + tracker.q_hi
        if k >= 500:
            counted += 1
            hits += low <= y <= high
        tracker.observe(y, mean, low, high)
    return hits / counted


@pytest.mark.parametrize("nominal", [0.8, 0.9, 0.95])
def test_gaussian_noise_coverage_is_nominal(nominal: float) -> None:
    rng = random.Random(1)
    coverage = run(HorizonInterval(nominal), [rng.gauss(0, 2) for _ in range(20_000)])
    assert coverage == pytest.approx(nominal, abs=0.015)


def test_skewed_noise_gets_a_skewed_interval_with_nominal_coverage() -> None:
    rng = random.Random(2)
    tracker = HorizonInterval(0.9)
    coverage = run(tracker, [rng.expovariate(1.0) - 1.0 for _ in range(20_000)])
    assert coverage == pytest.approx(0.9, abs=0.015)
    # True quantiles: 5 % at -0.95, 95 % at ln 20 - 1 ≈ 2.0 (the tracker oscillates around them).
    assert 1.6 < tracker.q_hi < 2.4 and -1.15 < tracker.q_lo < -0.8


def test_ties_do_not_inflate_coverage() -> None:
    # 60 % of the values equal the point forecast exactly (an idle VM), the rest are noise:
    # the interval must still miss about 10 % of the time, not 6 % or less.
    rng = random.Random(3)
    draws = [0.0 if rng.random() < 0.6 else rng.gauss(0, 1) for _ in range(20_000)]
    assert run(HorizonInterval(0.9), draws) == pytest.approx(0.9, abs=0.02)


def test_interval_adapts_when_noise_grows() -> None:
    rng = random.Random(4)
    tracker = HorizonInterval(0.9)
    run(tracker, [rng.gauss(0, 1) for _ in range(5000)])
    narrow = tracker.q_hi - tracker.q_lo
    coverage = run(tracker, [rng.gauss(0, 5) for _ in range(8000)])
    assert tracker.q_hi - tracker.q_lo > 3 * narrow
    assert coverage == pytest.approx(0.9, abs=0.03)


def test_coverage_is_tracked_and_state_round_trips() -> None:
    rng = random.Random(5)
    tracker = HorizonInterval(0.9, coverage_half_life=500)
    run(tracker, [rng.gauss(0, 1) for _ in range(3000)])
    assert tracker.ready and tracker.n == 3000
    assert 0.8 < tracker.recent_coverage < 1.0
    assert 0.85 < tracker.hits / tracker.n < 0.95
    copy = HorizonInterval.from_state(tracker.to_state(), 0.9, lr=0.05, warm=20, coverage_half_life=500)
    for y in (0.3, -2.5, 4.0):
        for t in (tracker, copy):
            t.observe(y, 0.0, t.q_lo, t.q_hi)
    assert copy.to_state() == tracker.to_state()


def test_bad_parameters() -> None:
    for kwargs in ({"coverage": 0.0}, {"coverage": 1.0}):
        with pytest.raises(ForecastingError):
            HorizonInterval(**kwargs)
    with pytest.raises(ForecastingError):
        HorizonInterval(0.9, lr=0.0)
    with pytest.raises(ForecastingError):
        HorizonInterval(0.9, warm=1)


def test_forecaster_intervals_cover_noise_at_every_horizon() -> None:
    rng = random.Random(6)
    values = [50 + rng.gauss(0, 5) for _ in range(6000)]
    f = SeriesForecaster(
        step_seconds=60, horizons_seconds=(60, 360, 720), upper_bound=100, config=ForecasterConfig(coverage=0.9)
    )
    issued: dict[int, list[tuple[float, float]]] = {}
    hits = [0, 0, 0]
    counts = [0, 0, 0]
    for k, v in enumerate(values):
        for i, h in enumerate((1, 6, 12)):
            past = issued.get(k - h)
            if past is not None and k > 1000:
                low, high = past[i]
                hits[i] += low <= v <= high
                counts[i] += 1
        f.update(k * 60.0, v)
        fc = f.forecast(k * 60.0)
        issued[k] = list(zip(fc.lower, fc.upper, strict=True))
    for i in range(3):
        assert hits[i] / counts[i] == pytest.approx(0.9, abs=0.02)
    assert f.forecast(5999 * 60.0).coverage == pytest.approx(0.9, abs=0.04)
