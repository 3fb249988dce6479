"""ForecasterBank: keyed forecasters, idle-TTL and capacity eviction (counted), snapshots."""

from __future__ import annotations

import json

import pytest

from streams.forecasting import ForecasterBank, ForecasterConfig, ForecastingError, SeriesForecaster

CHEAP = ForecasterConfig(snarimax=False, holt_winters=False, season_seconds=None)


def factory(_key: tuple[str, str]) -> SeriesForecaster:
    return SeriesForecaster(step_seconds=10.0, horizons_seconds=(10.0, 60.0), upper_bound=100.0, config=CHEAP)


def test_idle_series_are_evicted_after_the_ttl_and_counted() -> None:
    bank = ForecasterBank(factory, ttl_seconds=100.0, max_series=10)
    bank.update(("wl-1", "cpu"), 0.0, 10.0)
    bank.update(("wl-2", "cpu"), 50.0, 10.0)
    bank.update(("wl-1", "memory"), 80.0, 10.0)
    assert bank.evict_idle(99.0) == 0
    assert bank.evict_idle(120.0) == 1  # wl-1/cpu last seen at 0
    assert ("wl-1", "cpu") not in bank and len(bank) == 2
    bank.update(("wl-2", "cpu"), 170.0, 11.0)  # refreshed: survives the next sweep
    assert bank.evict_idle(185.0) == 1  # wl-1/memory (80)
    assert list(bank.keys()) == [("wl-2", "cpu")]
    assert bank.evicted_idle == 2 and bank.evicted_capacity == 0
    assert bank.forecast(("wl-1", "cpu"), 185.0) is None


def test_bank_is_bounded_and_evicts_the_least_recently_updated() -> None:
    bank = ForecasterBank(factory, ttl_seconds=1e9, max_series=3)
    for k, name in enumerate(("a", "b", "c")):
        bank.update((name, "cpu"), float(k), 1.0)
    bank.update(("a", "cpu"), 10.0, 1.0)  # a is now the most recent
    bank.update(("d", "cpu"), 11.0, 1.0)
    assert set(bank.keys()) == {("a", "cpu"), ("c", "cpu"), ("d", "cpu")}
    assert bank.evicted_capacity == 1 and bank.evicted_idle == 0


def test_snapshot_restore_continues_the_series() -> None:
    bank = ForecasterBank(factory, ttl_seconds=1e9)
    key = ("wl-9", "cpu")
    for k in range(200):
        bank.update(key, k * 10.0, 30.0 + (k % 7))
    snapshot = json.loads(json.dumps(bank.snapshot(key)))
    other = ForecasterBank(factory, ttl_seconds=1e9)  # e.g. the worker that owns the partition now
    other.restore(key, snapshot)
    assert other.restored == 1
    for k in range(200, 260):
        bank.update(key, k * 10.0, 30.0 + (k % 7))
        other.update(key, k * 10.0, 30.0 + (k % 7))
    assert other.forecast(key, 2590.0) == bank.forecast(key, 2590.0)
    assert bank.snapshot(("nope", "cpu")) is None
    assert other.pop(key) is not None and key not in other and other.evicted_idle == 0


def test_bank_validates_its_arguments() -> None:
    with pytest.raises(ForecastingError):
        ForecasterBank(factory, ttl_seconds=0.0)
    with pytest.raises(ForecastingError):
        ForecasterBank(factory, max_series=0)
    with pytest.raises(ForecastingError):
        ForecasterBank("not callable")  # type: ignore[arg-type]


def test_eviction_goes_by_sample_time_not_update_order() -> None:
    bank = ForecasterBank(factory, ttl_seconds=100.0)
    bank.update(("late-partition", "cpu"), 500.0, 1.0)
    bank.update(("early-partition", "cpu"), 10.0, 1.0)  # updated last, but its sample is old
    old = SeriesForecaster.from_state(bank.snapshot(("early-partition", "cpu")))  # type: ignore[arg-type]
    bank.restore(("restored", "cpu"), old.to_state())
    assert bank.evict_idle(550.0) == 2
    assert list(bank.keys()) == [("late-partition", "cpu")]
