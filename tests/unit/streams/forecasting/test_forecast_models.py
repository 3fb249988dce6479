"""One contract over every candidate model, plus the River fast paths against River itself."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest

from streams.forecasting.errors import ForecastingError, StateError
from streams.forecasting.models import (
    EWMA,
    DailyProfileEWMA,
    ForecastModel,
    HoltWintersModel,
    LastValue,
    MovingAverage,
    SeasonalNaive,
    SnarimaxModel,
    model_from_state,
)

HORIZONS = (1, 3, 12)

# Every candidate the forecaster can build, with parameters small enough to warm up in a test.
CANDIDATES: dict[str, Callable[[], ForecastModel]] = {
    "last_value": LastValue,
    "moving_average": lambda: MovingAverage(6),
    "ewma": lambda: EWMA(0.3),
    "seasonal_naive": lambda: SeasonalNaive(24),
    "profile_ewma": lambda: DailyProfileEWMA(0.3, period=24, bin_steps=4, beta=0.2),
    "holt_winters": lambda: HoltWintersModel(0.3, 0.05),
    "holt_winters_seasonal": lambda: HoltWintersModel(0.3, 0.05, 0.2, seasonality=24),
    "snarimax": lambda: SnarimaxModel(2, 1, 2, scale=100.0, max_horizon=12, refresh_every=4),
}


def series(n: int, seed: int = 7) -> list[float]:
    """A daily-ish wave with noise and spikes, within 0..100."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        value = 40 + 15 * math.sin(2 * math.pi * k / 24) + rng.gauss(0, 4)
        if rng.random() < 0.02:
            value += 40
        out.append(min(max(value, 0.0), 100.0))
    return out


@pytest.fixture(params=sorted(CANDIDATES))
def make(request: pytest.FixtureRequest) -> Callable[[], ForecastModel]:
    return CANDIDATES[request.param]


def test_every_model_kind_is_covered() -> None:
    kinds = {CANDIDATES[name]().kind for name in CANDIDATES}
    assert kinds == {
        "last_value",
        "moving_average",
        "ewma",
        "seasonal_naive",
        "profile_ewma",
        "holt_winters",
        "snarimax",
    }


def test_contract_shape_finite_and_ready(make: Callable[[], ForecastModel]) -> None:
    model = make()
    assert isinstance(model, ForecastModel)
    assert not model.ready()
    values = series(200)
    for step, y in enumerate(values):
        model.learn(step, y)
        out = model.forecast(step, HORIZONS)
        assert len(out) == len(HORIZONS)
        assert all(math.isfinite(v) for v in out), (step, out)
    assert model.ready()
    # Forecasts stay in a sane range of the data (no divergence), though models are not clamped.
    assert all(-50.0 < v < 150.0 for v in model.forecast(199, HORIZONS))


def test_contract_not_ready_means_last_value(make: Callable[[], ForecastModel]) -> None:
    model = make()
    model.learn(0, 12.5)
    if not model.ready():
        assert model.forecast(0, HORIZONS) == [12.5] * len(HORIZONS)


def test_contract_state_round_trip_is_exact(make: Callable[[], ForecastModel]) -> None:
    values = series(160, seed=3)
    original = make()
    for step, y in enumerate(values[:97]):
        original.learn(step, y)
    state = json.loads(json.dumps(original.to_state(), allow_nan=False))
    restored = model_from_state(state)
    assert type(restored) is type(original)
    assert restored.name == original.name
    for step, y in enumerate(values[97:], start=97):
        original.learn(step, y)
        restored.learn(step, y)
        assert restored.forecast(step, HORIZONS) == original.forecast(step, HORIZONS)
        assert restored.ready() == original.ready()


def test_contract_gaps_keep_working(make: Callable[[], ForecastModel]) -> None:
    model = make()
    values = series(150, seed=11)
    for step, y in enumerate(values):
        if step % 7 in (3, 4):  # missing samples
            continue
        model.learn(step, y)
    assert all(math.isfinite(v) for v in model.forecast(149, HORIZONS))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MovingAverage(0), "window"),
        (lambda: EWMA(0.0), "alpha"),
        (lambda: EWMA(1.5), "alpha"),
        (lambda: SeasonalNaive(1), "period"),
        (lambda: DailyProfileEWMA(0.3, period=24, bin_steps=5), "bin_steps"),
        (lambda: DailyProfileEWMA(0.3, period=24, beta=0.0), "beta"),
        (lambda: HoltWintersModel(0.3, None, 0.1, seasonality=12), "Holt-Winters"),
        (lambda: HoltWintersModel(1.3), "alpha"),
        (lambda: SnarimaxModel(0, 1, 0), "p or q"),
        (lambda: SnarimaxModel(2, 1, 2, scale=0.0), "scale"),
        (lambda: SnarimaxModel(2, 1, 2, refresh_every=0), "refresh_every"),
    ],
)
def test_bad_parameters_are_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ForecastingError, match=message):
        build()


def test_bad_state_is_refused() -> None:
    with pytest.raises(StateError):
        model_from_state({"kind": "nope", "params": {}, "state": {}})
    with pytest.raises(StateError):
        model_from_state({"kind": "ewma", "params": {"alpha": 0.5}, "state": {}})
    good = DailyProfileEWMA(0.3, period=24, bin_steps=4).to_state()
    good["state"]["profile"] = [0.0]
    with pytest.raises(StateError):
        model_from_state(good)


@pytest.mark.parametrize(
    "params",
    [
        {"alpha": 0.3},
        {"alpha": 0.3, "beta": 0.1},
        {"alpha": 0.3, "beta": 0.1, "gamma": 0.2, "seasonality": 5},
        {"alpha": 0.3, "beta": 0.1, "gamma": 0.2, "seasonality": 5, "multiplicative": True},
    ],
)
def test_holt_winters_forecast_is_rivers(params: dict[str, object]) -> None:
    model = HoltWintersModel(**params)  # type: ignore[arg-type]
    for step, y in enumerate(series(60, seed=5)):
        model.learn(step, y + 10)
    path = model._model.forecast(12)  # River's own multi-step forecast
    horizons = (1, 2, 5, 6, 12)
    assert model.forecast(59, horizons) == pytest.approx([path[h - 1] for h in horizons], rel=1e-12)


@pytest.mark.parametrize("order", [(2, 1, 2), (1, 0, 0), (3, 2, 1), (0, 1, 2)])
def test_snarimax_path_is_rivers(order: tuple[int, int, int]) -> None:
    model = SnarimaxModel(*order, scale=100.0)
    for step, y in enumerate(series(300, seed=9)):
        model.learn(step, y)
    assert model.river_path(18) == pytest.approx(model._model.forecast(18), rel=1e-9, abs=1e-12)


def test_snarimax_reanchors_between_refreshes() -> None:
    model = SnarimaxModel(2, 1, 2, scale=100.0, max_horizon=6, refresh_every=4)
    values = series(120, seed=2)
    for step, y in enumerate(values):
        model.learn(step, y)
    # 120 learns: the path was refreshed at the 120th; one more learn shifts the origin by one.
    model.learn(120, 55.0)
    path = model._path
    assert model.forecast(120, (1, 6)) == pytest.approx([55.0 + path[2] - path[1], 55.0 + path[7] - path[1]])
