"""The per-series online forecaster: candidates, per-horizon choice, intervals, events, state.

A :class:`SeriesForecaster` is plain Python with time as an input: ``update(at, value)``
learns one sample, ``forecast(at)`` reads the forecast for the configured horizons. All the
work happens in ``update`` (learning, scoring, choosing, calibrating), so ``forecast`` is a
cheap read that never changes the state and can be called any number of times.

>>> f = SeriesForecaster(step_seconds=300, horizons_seconds=(300, 1800), upper_bound=100)
>>> for k in range(100):
...     f.update(k * 300.0, 40.0 + (k % 2))
>>> fc = f.forecast(99 * 300.0)
>>> fc.horizons_seconds, 39.0 < fc.mean[0] < 42.0, fc.lower[1] <= fc.mean[1] <= fc.upper[1]
((300.0, 1800.0), True, True)
>>> SeriesForecaster.from_state(f.to_state()).forecast(99 * 300.0) == fc
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.forecasting.conformal import HorizonInterval
from streams.forecasting.errors import ForecastingError, SampleError, StateError
from streams.forecasting.events import ActiveEvent, EventEffects
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
from streams.forecasting.selector import HorizonSelector, SelectorParams

__all__ = ["STATE_FORMAT", "STATE_VERSION", "Forecast", "ForecasterConfig", "SeriesForecaster"]

STATE_FORMAT = "plba.series_forecaster"
STATE_VERSION = 1
# Seasonal naive keeps one value per step of the season; beyond this it is not worth its state.
_MAX_SEASONAL_NAIVE_PERIOD = 2016


@dataclass(frozen=True, slots=True)
class Forecast:
    """Forecast of one series at ``issued_at`` for each horizon (same order as ``horizons_seconds``).

    ``mean`` is the point forecast (the one scored by MAE); ``[lower, upper]`` the interval that
    holds the value with the configured nominal coverage; all clamped to the series' physical
    bounds. The interval is calibrated on its own misses, so when the point forecast is biased
    (a trend it lags, a skewed series) the interval may lie on one side of ``mean``;
    ``lower <= upper`` always holds. ``model`` names the candidates combined at the longest
    horizon (``"reactive"`` when no model beats the last value there), ``models`` does so per
    horizon. ``reliable`` is False while the series warms up, when the combined forecast is not
    better than reactive at some horizon, or when the last sample is older than the longest
    horizon. ``recent_mae`` is the mean absolute error of the issued forecasts at the longest
    horizon and ``coverage`` the fraction of values inside their intervals (mean over
    horizons), both exponentially weighted over ``coverage_half_life`` samples. ``event``
    describes the event adjustment applied, if any.
    """

    issued_at: float
    step_seconds: float
    horizons_seconds: tuple[float, ...]
    mean: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    model: str
    reliable: bool
    recent_mae: float | None
    coverage: float | None
    event: dict[str, Any] | None
    models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForecasterConfig:
    """Tunables of :class:`SeriesForecaster`; the defaults are what the benchmarks measured."""

    coverage: float = 0.9
    # Candidates. Seasonal candidates need ``season_seconds`` (None disables them).
    ma_windows: tuple[int, ...] = (6, 24)
    ewma_alphas: tuple[float, ...] = (0.5, 0.3, 0.15, 0.05)
    season_seconds: float | None = 86400.0
    profile_bin_seconds: float = 3600.0
    profile_alphas: tuple[float, ...] = (0.3, 0.15)
    profile_beta: float = 0.1
    seasonal_naive: bool = True
    holt_winters: bool = True
    hw_alpha: float = 0.3
    hw_beta: float | None = 0.01
    snarimax: bool = True
    snarimax_order: tuple[int, int, int] = (2, 1, 2)
    snarimax_lr: float = 0.001
    snarimax_refresh_every: int = 8
    # Every ``sleep_after`` samples, an expensive candidate (SNARIMAX) that did not earn its
    # keep stops learning for good: chosen in less than ``sleep_below_share`` of the selections
    # at every horizon, or its rolling error not ``sleep_margin`` below the best cheap
    # candidate's at any horizon.
    sleep_after: int = 500
    sleep_below_share: float = 0.1
    sleep_margin: float = 0.02
    # Candidates used before the selector has scored ``warmup`` samples (names; missing ones skipped).
    prior: tuple[str, ...] = ("ma6", "ewma0.3")
    # Selection. All candidates are scored every ``score_every`` samples; in between only the
    # chosen ones forecast. Half lives, warm-up and demotion are in samples/steps.
    score_every: int = 2
    top_k: int = 3
    score_half_life: float = 576.0
    short_half_life: float = 36.0
    demote_ratio: float = 1.5
    demote_steps: int = 288
    warmup: int = 24
    reliable_ratio: float = 1.05
    # Intervals.
    interval_lr: float = 0.05
    interval_warm: int = 20
    coverage_half_life: float = 1000.0
    # Events.
    event_learn_rate: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.coverage < 1.0:
            raise ForecastingError(f"coverage must be in (0, 1), not {self.coverage!r}")
        if any(not (isinstance(w, int) and w >= 1) for w in self.ma_windows):
            raise ForecastingError(f"ma_windows must be ints ≥ 1, not {self.ma_windows!r}")
        if any(not 0.0 < a <= 1.0 for a in self.ewma_alphas + self.profile_alphas):
            raise ForecastingError("smoothing rates must be in (0, 1]")
        if self.season_seconds is not None and not self.season_seconds > 0:
            raise ForecastingError(f"season_seconds must be positive or None, not {self.season_seconds!r}")
        if not self.profile_bin_seconds > 0:
            raise ForecastingError("profile_bin_seconds must be positive")
        if not (isinstance(self.sleep_after, int) and self.sleep_after >= 1):
            raise ForecastingError("sleep_after must be an int ≥ 1")
        if not 0.0 <= self.sleep_margin < 1.0:
            raise ForecastingError(f"sleep_margin must be in [0, 1), not {self.sleep_margin!r}")
        if not 0.0 <= self.sleep_below_share <= 1.0:
            raise ForecastingError(f"sleep_below_share must be in [0, 1], not {self.sleep_below_share!r}")
        if not (isinstance(self.score_every, int) and self.score_every >= 1):
            raise ForecastingError(f"score_every must be an int ≥ 1, not {self.score_every!r}")
        # The nested parameter objects validate the rest.
        self.selector_params()
        HorizonInterval(
            self.coverage, lr=self.interval_lr, warm=self.interval_warm, coverage_half_life=self.coverage_half_life
        )
        EventEffects(self.event_learn_rate)

    def selector_params(self) -> SelectorParams:
        """Selector parameters, counted in scorings (one every ``score_every`` samples)."""
        k = self.score_every
        return SelectorParams(
            top_k=self.top_k,
            half_life=max(1.0, self.score_half_life / k),
            short_half_life=max(1.0, self.short_half_life / k),
            demote_ratio=self.demote_ratio,
            demote_steps=self.demote_steps,
            warmup=max(1, math.ceil(self.warmup / k)),
            reliable_ratio=self.reliable_ratio,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecasterConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise StateError(f"unknown forecaster config keys: {sorted(unknown)}")
        values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
        return cls(**values)


def _finite(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ForecastingError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ForecastingError(f"{name} must be finite, not {value!r}")
    return number


def _divisor_at_most(n: int, limit: int) -> int:
    for d in range(max(1, min(limit, n)), 0, -1):
        if n % d == 0:
            return d
    return 1


def _build_candidates(
    config: ForecasterConfig, step_seconds: float, scale: float, max_horizon: int
) -> list[ForecastModel]:
    models: list[ForecastModel] = [LastValue()]
    models += [MovingAverage(w) for w in config.ma_windows]
    models += [EWMA(a) for a in config.ewma_alphas]
    period = round(config.season_seconds / step_seconds) if config.season_seconds else 0
    if period >= 4:
        bin_steps = _divisor_at_most(period, max(1, round(config.profile_bin_seconds / step_seconds)))
        models += [DailyProfileEWMA(a, period, bin_steps, config.profile_beta) for a in config.profile_alphas]
        if config.seasonal_naive and period <= _MAX_SEASONAL_NAIVE_PERIOD:
            models.append(SeasonalNaive(period))
    if config.holt_winters:
        models.append(HoltWintersModel(config.hw_alpha, config.hw_beta))
    if config.snarimax:
        p, d, q = config.snarimax_order
        models.append(
            SnarimaxModel(
                p,
                d,
                q,
                scale=scale,
                lr=config.snarimax_lr,
                max_horizon=max_horizon,
                refresh_every=config.snarimax_refresh_every,
            )
        )
    return models


class SeriesForecaster:
    """Online forecaster of one series (one workload's resource, or a node's base load).

    Parameters
    ----------
    step_seconds
        Sampling interval of the series; sample times are mapped to steps ``round(at / step)``.
    horizons_seconds
        Forecast horizons; each becomes ``max(1, round(h / step_seconds))`` steps.
    upper_bound, lower_bound
        Physical bounds (e.g. 0 … 100 % or 0 … capacity); samples and forecasts are clamped.
    config
        Candidates, selection, interval and event tunables.
    """

    __slots__ = (
        "_all_ready",
        "_cache",
        "_events",
        "_expensive",
        "_intervals",
        "_issued",
        "_last_at",
        "_last_step",
        "_last_value",
        "_max_h",
        "_models",
        "_n",
        "_pending",
        "_ready",
        "_selector",
        "_sleeping",
        "_steps",
        "_used",
        "config",
        "horizons_seconds",
        "lower_bound",
        "step_seconds",
        "upper_bound",
    )

    def __init__(
        self,
        *,
        step_seconds: float,
        horizons_seconds: Sequence[float],
        upper_bound: float,
        lower_bound: float = 0.0,
        config: ForecasterConfig | None = None,
    ) -> None:
        self.step_seconds = _finite("step_seconds", step_seconds)
        if self.step_seconds <= 0:
            raise ForecastingError(f"step_seconds must be positive, not {step_seconds!r}")
        if (
            isinstance(horizons_seconds, (str, bytes))
            or not isinstance(horizons_seconds, Sequence)
            or not horizons_seconds
        ):
            raise ForecastingError(f"horizons_seconds must be a non-empty sequence, not {horizons_seconds!r}")
        self.horizons_seconds = tuple(_finite("a horizon", h) for h in horizons_seconds)
        if any(h <= 0 for h in self.horizons_seconds):
            raise ForecastingError(f"horizons must be positive, not {horizons_seconds!r}")
        if list(self.horizons_seconds) != sorted(self.horizons_seconds):
            raise ForecastingError(f"horizons must be in increasing order, not {horizons_seconds!r}")
        self.upper_bound = _finite("upper_bound", upper_bound)
        self.lower_bound = _finite("lower_bound", lower_bound)
        if not self.upper_bound > self.lower_bound:
            raise ForecastingError(f"upper_bound ({upper_bound}) must exceed lower_bound ({lower_bound})")
        if config is not None and not isinstance(config, ForecasterConfig):
            raise ForecastingError(f"config must be a ForecasterConfig, not {type(config).__name__}")
        self.config = config or ForecasterConfig()
        self._steps = [max(1, round(h / self.step_seconds)) for h in self.horizons_seconds]
        self._max_h = max(self._steps)
        scale = self.upper_bound - self.lower_bound
        self._models = _build_candidates(self.config, self.step_seconds, scale, self._max_h)
        n_models, n_h = len(self._models), len(self._steps)
        self._sleeping = [False] * n_models
        self._ready = [False] * n_models
        self._all_ready = False
        self._expensive = [c for c, m in enumerate(self._models) if m.expensive]
        self._used = [[0] * n_h for _ in range(n_models)]
        self._selector = HorizonSelector(n_models, n_h, self.config.selector_params(), self._prior())
        self._intervals = [self._new_interval() for _ in self._steps]
        self._events = EventEffects(self.config.event_learn_rate)
        # Forecasts awaiting their value, by issue step (slot = step % (max horizon + 1)):
        # candidates' ones at scoring steps: [step, per-horizon candidate predictions, per-horizon combined];
        # the issued ones at every step: [step, per-horizon mean, lower, upper].
        self._pending: list[list[Any] | None] = [None] * (self._max_h + 1)
        self._issued: list[list[Any] | None] = [None] * (self._max_h + 1)
        self._last_step = -(2**62)
        self._last_at = -math.inf
        self._last_value = math.nan
        self._n = 0
        self._cache: dict[str, Any] = {}

    def _prior(self) -> list[int]:
        names = [m.name for m in self._models]
        return [names.index(p) for p in self.config.prior if p in names] or [0]

    def _new_interval(self) -> HorizonInterval:
        c = self.config
        return HorizonInterval(
            c.coverage, lr=c.interval_lr, warm=c.interval_warm, coverage_half_life=c.coverage_half_life
        )

    # --- properties --------------------------------------------------------------------------

    @property
    def horizons_steps(self) -> tuple[int, ...]:
        return tuple(self._steps)

    @property
    def candidate_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self._models)

    @property
    def samples(self) -> int:
        """Samples learned so far."""
        return self._n

    @property
    def last_at(self) -> float | None:
        return None if self._n == 0 else self._last_at

    @property
    def demotions(self) -> int:
        return self._selector.demotions

    @property
    def sleeping(self) -> tuple[str, ...]:
        """Expensive candidates that stopped learning because they never earned a place."""
        return tuple(m.name for m, s in zip(self._models, self._sleeping, strict=True) if s)

    # --- learning ----------------------------------------------------------------------------

    def update(self, at: float, value: float, events: Sequence[ActiveEvent] = ()) -> None:
        """Learn the sample ``value`` observed at ``at`` (epoch seconds, non-decreasing).

        ``events`` are the events of this subject active around ``at``; inside their windows
        the models learn the value with the effect removed and the effect itself is learned.
        Raises :class:`SampleError` (state unchanged) for a non-finite value or time, or a
        time before the last sample's. A sample at exactly the last sample's time is a
        redelivery and is ignored, so at-least-once delivery cannot teach a value twice.
        """
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise SampleError(f"sample value must be a finite number, not {value!r}")
        if not (isinstance(at, (int, float)) and math.isfinite(at)):
            raise SampleError(f"sample time must be a finite number, not {at!r}")
        if at < self._last_at:
            raise SampleError(f"sample at {at} is older than the last one ({self._last_at})")
        if at == self._last_at:
            return
        y = min(max(float(value), self.lower_bound), self.upper_bound)
        if events or self._events.active:
            baseline = self._cache["combined"][0] if self._cache else y
            y = min(max(self._events.observe(at, y, events, baseline), self.lower_bound), self.upper_bound)
        step = round(at / self.step_seconds)
        new_step = step != self._last_step
        if new_step:
            self._score(step, y)
        models, sleeping = self._models, self._sleeping
        for c, m in enumerate(models):
            if not sleeping[c]:
                m.learn(step, y)
        self._last_step, self._last_at, self._last_value = step, float(at), y
        self._n += 1
        self._issue(step, y)

    def _score(self, step: int, y: float) -> None:
        size = len(self._issued)
        issued, pending = self._issued, self._pending
        selector, intervals = self._selector, self._intervals
        for i, h in enumerate(self._steps):
            origin = step - h
            slot = issued[origin % size]
            if slot is not None and slot[0] == origin:
                intervals[i].observe(y, slot[1][i], slot[2][i], slot[3][i])
            slot = pending[origin % size]
            if slot is not None and slot[0] == origin:
                selector.observe(i, slot[1][i], slot[2][i], y, step)

    def _issue(self, step: int, y: float) -> None:
        models, steps, selector = self._models, self._steps, self._selector
        size = len(self._issued)
        cache = self._cache
        if not cache or self._n % self.config.score_every == 0:
            sleeping = self._sleeping
            idle = [y] * len(steps)
            by_h = list(
                zip(
                    *[idle if s else m.forecast(step, steps) for m, s in zip(models, sleeping, strict=True)],
                    strict=True,
                )
            )
            ready = self._ready
            if not self._all_ready:  # readiness only ever turns on (and off for good when asleep)
                ready = self._ready = [(not s) and m.ready() for m, s in zip(models, sleeping, strict=True)]
                self._all_ready = all(r or s for r, s in zip(ready, sleeping, strict=True))
            used, expensive = self._used, self._expensive
            names = []
            combined = []
            for i, preds in enumerate(by_h):
                chosen = selector.select(i, step, ready)
                for c in expensive:
                    if c in chosen:
                        used[c][i] += 1
                combined.append(sum([preds[c] for c in chosen]) / len(chosen))
                if selector.use[i]:
                    names.append("+".join(models[c].name for c in chosen))
                else:
                    names.append("reactive")
            self._pending[step % size] = [step, by_h, combined]
        else:
            names = cache["models"]
            needed: dict[int, list[float]] = {}
            combined = []
            for i, chosen in enumerate(selector.chosen):
                total = 0.0
                for c in chosen:
                    row = needed.get(c)
                    if row is None:
                        row = needed[c] = models[c].forecast(step, steps)
                    total += row[i]
                combined.append(total / len(chosen))
        lb, ub = self.lower_bound, self.upper_bound
        intervals = self._intervals
        use = selector.use
        means, lows, highs = [], [], []
        for i, value in enumerate(combined):
            # Unreliable after warm-up: reactive, the last value (the forecast says so).
            mean = value if use[i] else y
            mean = lb if mean < lb else ub if mean > ub else mean
            iv = intervals[i]
            low = mean + iv.q_lo
            high = mean + iv.q_hi
            means.append(mean)
            lows.append(lb if low < lb else ub if low > ub else low)
            highs.append(ub if high > ub else lb if high < lb else high)
        self._issued[step % size] = [step, means, lows, highs]
        self._cache = {
            "combined": combined,
            "mean": means,
            "lower": lows,
            "upper": highs,
            "models": names,
            "reliable": all(selector.reliable),
        }
        if self._n % self.config.sleep_after == 0:
            self._sleep_idle()

    def _sleep_idle(self) -> None:
        # Selections per horizon in the window just ended (one per scoring).
        selections = self.config.sleep_after / self.config.score_every
        keep = 1.0 - self.config.sleep_margin
        long, ready = self._selector.long, self._ready
        cheap = [c for c, m in enumerate(self._models) if not m.expensive and ready[c]]
        for c in self._expensive:
            if self._sleeping[c] or not ready[c]:
                continue
            rarely_chosen = max(self._used[c]) < self.config.sleep_below_share * selections
            never_better = bool(cheap) and all(row[c] >= keep * min(row[j] for j in cheap) for row in long)
            if rarely_chosen or never_better:
                self._sleeping[c] = True
                self._ready[c] = False
        self._used = [[0] * len(self._steps) for _ in self._models]

    # --- forecasting -------------------------------------------------------------------------

    def forecast(self, at: float, events: Sequence[ActiveEvent] = ()) -> Forecast:
        """The forecast issued at ``at`` for each horizon (no state change).

        When ``at`` is later than the last sample the horizons are counted from that sample,
        so the forecast targets ``at + h``. Events covering a target time adjust it.
        """
        if self._n == 0:
            raise ForecastingError("no sample learned yet: nothing to forecast from")
        at = _finite("at", at)
        if at < self._last_at:
            raise ForecastingError(f"forecast at {at} is before the last sample ({self._last_at})")
        cache = self._cache
        lag = round(at / self.step_seconds) - self._last_step
        if lag <= 0:
            mean, lower, upper, names = cache["mean"], cache["lower"], cache["upper"], cache["models"]
        else:
            mean, lower, upper, names = self._forecast_lagged(lag)
        event = None
        if events:
            mean, lower, upper = list(mean), list(lower), list(upper)  # adjusted copies
            event = self._adjust(at, events, mean, lower, upper)
        intervals = self._intervals
        ready = [iv for iv in intervals if iv.ready]
        coverage = math.fsum(iv.recent_coverage for iv in ready) / len(ready) if ready else None
        last = intervals[-1]
        return Forecast(
            issued_at=at,
            step_seconds=self.step_seconds,
            horizons_seconds=self.horizons_seconds,
            mean=tuple(mean),
            lower=tuple(lower),
            upper=tuple(upper),
            model=names[-1],
            reliable=bool(cache["reliable"]) and lag <= self._max_h,
            recent_mae=last.scale if last.ready else None,
            coverage=coverage,
            event=event,
            models=tuple(names),
        )

    def _forecast_lagged(self, lag: int) -> tuple[list[float], list[float], list[float], list[str]]:
        """Forecast from the last sample for horizons shifted by ``lag`` missing steps."""
        selector, models = self._selector, self._models
        lb, ub = self.lower_bound, self.upper_bound
        mean, lower, upper, names = [], [], [], []
        for i, h in enumerate(self._steps):
            chosen = selector.chosen[i]
            if selector.use[i]:
                value = math.fsum(models[c].forecast(self._last_step, (h + lag,))[0] for c in chosen) / len(chosen)
                names.append("+".join(models[c].name for c in chosen))
            else:
                value = self._last_value
                names.append(self._cache["models"][i])
            m = min(max(value, lb), ub)
            iv = self._intervals[i]
            mean.append(m)
            lower.append(min(max(m + iv.q_lo, lb), ub))
            upper.append(min(max(m + iv.q_hi, lb), ub))
        return mean, lower, upper, names

    def _adjust(
        self, at: float, events: Sequence[ActiveEvent], mean: list[float], lower: list[float], upper: list[float]
    ) -> dict[str, Any] | None:
        lb, ub = self.lower_bound, self.upper_bound
        applied: dict[str, tuple[ActiveEvent, float, float]] = {}
        affected = []
        for i, h in enumerate(self.horizons_seconds):
            factor, delta, hit = self._events.combined(events, at + h)
            affected.append(bool(hit))
            if not hit:
                continue
            for e in hit:
                f, d, _ = self._events.effect(e)
                applied.setdefault(e.key, (e, f, d))
            mean[i] = min(max(mean[i] * factor + delta, lb), ub)
            lower[i] = min(max(lower[i] * factor + delta, lb), ub)
            upper[i] = min(max(upper[i] * factor + delta, lb), ub)
        if not applied:
            return None
        first, *others = applied.values()
        out = self._events.describe(*first)
        out["affected_horizons"] = affected
        if others:
            out["composed_with"] = [
                {"kind": e.kind, "subject": e.subject, "factor": f, "delta": d} for e, f, d in others
            ]
        return out

    # --- state -------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """An explicit, versioned, JSON-safe snapshot (numbers, strings, lists, dicts; no pickle)."""
        pending = [
            None if slot is None else [slot[0], [[_json_num(v) for v in row] for row in slot[1]], slot[2]]
            for slot in self._pending
        ]
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "step_seconds": self.step_seconds,
            "horizons_seconds": list(self.horizons_seconds),
            "upper_bound": self.upper_bound,
            "lower_bound": self.lower_bound,
            "config": self.config.to_dict(),
            "models": [m.to_state() for m in self._models],
            "sleeping": list(self._sleeping),
            "used": self._used,
            "selector": self._selector.to_state(),
            "intervals": [iv.to_state() for iv in self._intervals],
            "events": self._events.to_state(),
            "pending": pending,
            "issued": self._issued,
            "last_step": self._last_step if self._n else None,
            "last_at": self._last_at if self._n else None,
            "last_value": self._last_value if self._n else None,
            "n": self._n,
            "cache": self._cache,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesForecaster:
        """Rebuild a forecaster from :meth:`to_state`; it continues exactly where that one was."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise StateError("not a series forecaster state")
        if state.get("version") != STATE_VERSION:
            raise StateError(f"unsupported forecaster state version {state.get('version')!r}")
        try:
            f = cls(
                step_seconds=state["step_seconds"],
                horizons_seconds=state["horizons_seconds"],
                upper_bound=state["upper_bound"],
                lower_bound=state["lower_bound"],
                config=ForecasterConfig.from_dict(state["config"]),
            )
            models = [model_from_state(m) for m in state["models"]]
            if [m.name for m in models] != [m.name for m in f._models]:
                raise StateError("state's candidate models do not match its config")
            f._models = models
            n_models, n_h = len(models), len(f._steps)
            f._sleeping = [bool(v) for v in state["sleeping"]]
            f._used = [[int(v) for v in row] for row in state["used"]]
            if len(f._sleeping) != n_models or len(f._used) != n_models:
                raise StateError("state's model flags do not match its models")
            f._selector = HorizonSelector.from_state(
                n_models, n_h, f.config.selector_params(), f._prior(), state["selector"]
            )
            c = f.config
            f._intervals = [
                HorizonInterval.from_state(
                    s, c.coverage, lr=c.interval_lr, warm=c.interval_warm, coverage_half_life=c.coverage_half_life
                )
                for s in state["intervals"]
            ]
            if len(f._intervals) != n_h:
                raise StateError("state's intervals do not match its horizons")
            f._events = EventEffects.from_state(state["events"], c.event_learn_rate)
            pending, issued = state["pending"], state["issued"]
            if len(pending) != len(f._pending) or len(issued) != len(f._issued):
                raise StateError("state's pending forecasts do not match its horizons")
            f._pending = [None if slot is None else _pending_in(slot) for slot in pending]
            f._issued = [
                None if slot is None else [int(slot[0])] + [[float(v) for v in row] for row in slot[1:]]
                for slot in issued
            ]
            f._n = int(state["n"])
            if f._n:
                f._last_step = int(state["last_step"])
                f._last_at = float(state["last_at"])
                f._last_value = float(state["last_value"])
            f._cache = dict(state["cache"])
        except StateError:
            raise
        except ForecastingError as exc:
            raise StateError(f"state has invalid parameters: {exc}") from exc
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StateError(f"malformed forecaster state: {exc!r}") from exc
        return f


def _pending_in(slot: list[Any]) -> list[Any]:
    step, by_h, combined = slot
    return [
        int(step),
        [[math.nan if v is None else float(v) for v in row] for row in by_h],
        [float(v) for v in combined],
    ]


def _json_num(v: float) -> float | None:
    return v if math.isfinite(v) else None
