"""Many series forecasters keyed by (subject, resource), bounded in number and evicted when idle.

Time is an input: every call carries the caller's notion of now (the sample's time), and
:meth:`ForecasterBank.evict_idle` drops the forecasters not updated for ``ttl_seconds``. When
the bank is full, creating a forecaster evicts the least recently updated one. Both kinds of
eviction are counted, so the stream processor can export them as metrics.

>>> bank = ForecasterBank(lambda key: SeriesForecaster(step_seconds=5, horizons_seconds=(60,), upper_bound=100),
...                       ttl_seconds=600, max_series=1000)
>>> bank.update(("wl-1", "cpu"), 0.0, 12.0)
>>> bank.update(("wl-2", "cpu"), 700.0, 50.0)
>>> bank.evict_idle(700.0), len(bank), bank.evicted_idle
(1, 1, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from streams.forecasting.errors import ForecastingError
from streams.forecasting.events import ActiveEvent
from streams.forecasting.forecaster import Forecast, SeriesForecaster

__all__ = ["ForecasterBank", "SeriesKey"]

SeriesKey = tuple[str, str]


class ForecasterBank:
    """Forecasters by (subject, resource), created on first sample by ``factory``."""

    __slots__ = ("_series", "evicted_capacity", "evicted_idle", "factory", "max_series", "restored", "ttl_seconds")

    def __init__(
        self,
        factory: Callable[[SeriesKey], SeriesForecaster],
        *,
        ttl_seconds: float = 3600.0,
        max_series: int = 10_000,
    ) -> None:
        if not callable(factory):
            raise ForecastingError("factory must be callable")
        if not ttl_seconds > 0:
            raise ForecastingError(f"ttl_seconds must be positive, not {ttl_seconds!r}")
        if not (isinstance(max_series, int) and max_series >= 1):
            raise ForecastingError(f"max_series must be an int ≥ 1, not {max_series!r}")
        self.factory = factory
        self.ttl_seconds = float(ttl_seconds)
        self.max_series = max_series
        # Least recently updated first.
        self._series: OrderedDict[SeriesKey, SeriesForecaster] = OrderedDict()
        self.evicted_idle = 0
        self.evicted_capacity = 0
        self.restored = 0

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, key: object) -> bool:
        return key in self._series

    def keys(self) -> Iterator[SeriesKey]:
        return iter(list(self._series))

    def get(self, key: SeriesKey) -> SeriesForecaster | None:
        return self._series.get(key)

    def _make_room(self) -> None:
        while len(self._series) >= self.max_series:
            self._series.popitem(last=False)
            self.evicted_capacity += 1

    def update(self, key: SeriesKey, at: float, value: float, events: Sequence[ActiveEvent] = ()) -> None:
        """Learn one sample of ``key``'s series (creating its forecaster if needed)."""
        forecaster = self._series.get(key)
        if forecaster is None:
            self._make_room()
            forecaster = self.factory(key)
            self._series[key] = forecaster
        forecaster.update(at, value, events)
        self._series.move_to_end(key)

    def forecast(self, key: SeriesKey, at: float, events: Sequence[ActiveEvent] = ()) -> Forecast | None:
        """``key``'s forecast at ``at``, or None if the bank has no forecaster for it."""
        forecaster = self._series.get(key)
        return None if forecaster is None or forecaster.samples == 0 else forecaster.forecast(at, events)

    def evict_idle(self, now: float) -> int:
        """Drop the forecasters whose last sample is older than ``now - ttl_seconds``; returns how many.

        Scans every series: sample times differ between series (and restored snapshots bring
        their own), so the update order is not the age order.
        """
        limit = now - self.ttl_seconds
        idle = [key for key, f in self._series.items() if f.last_at is None or f.last_at < limit]
        for key in idle:
            del self._series[key]
        self.evicted_idle += len(idle)
        return len(idle)

    def snapshot(self, key: SeriesKey) -> dict[str, Any] | None:
        """The explicit state of ``key``'s forecaster (None if absent)."""
        forecaster = self._series.get(key)
        return None if forecaster is None else forecaster.to_state()

    def restore(self, key: SeriesKey, state: dict[str, Any]) -> SeriesForecaster:
        """Install a forecaster rebuilt from a snapshot (e.g. after a migration or a restart)."""
        forecaster = SeriesForecaster.from_state(state)
        if key not in self._series:
            self._make_room()
        self._series[key] = forecaster
        self._series.move_to_end(key)
        self.restored += 1
        return forecaster

    def pop(self, key: SeriesKey) -> SeriesForecaster | None:
        """Remove ``key``'s forecaster (e.g. its partition moved away) without counting an eviction."""
        return self._series.pop(key, None)
