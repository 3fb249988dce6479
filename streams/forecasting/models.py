"""Candidate forecasting models behind one small protocol.

Every model learns one value per call with the sample's *step index* (``round(at / step)``)
and forecasts ``h`` steps past an origin step, for several horizons at once. Models that
ignore time ignore the step; seasonal ones use it for the phase, so gaps in the data do not
shift the season. Each model exports an explicit JSON-safe state (numbers, lists, dicts; never
pickle) and is rebuilt from it by :func:`model_from_state`, continuing exactly where it was.

Before a model has seen enough data :meth:`ForecastModel.ready` is False and its forecast is
the last value, so callers always get finite numbers.

>>> m = EWMA(alpha=0.5)
>>> for step, y in enumerate([10.0, 20.0, 20.0]):
...     m.learn(step, y)
>>> m.forecast(2, (1, 6))
[17.5, 17.5]
>>> model_from_state(m.to_state()).forecast(2, (1,))
[17.5]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from streams.forecasting.errors import ForecastingError, StateError

__all__ = [
    "EWMA",
    "DailyProfileEWMA",
    "ForecastModel",
    "HoltWintersModel",
    "LastValue",
    "MovingAverage",
    "SeasonalNaive",
    "SnarimaxModel",
    "model_from_state",
]


@runtime_checkable
class ForecastModel(Protocol):
    """What the selector needs from a candidate model."""

    name: str
    kind: ClassVar[str]
    #: True for models whose forecast is costly (River SNARIMAX); the forecaster may put
    #: them to sleep where they never earn a place.
    expensive: ClassVar[bool]

    def learn(self, step: int, y: float) -> None:
        """Learn the value observed at ``step`` (steps only increase)."""

    def forecast(self, step: int, horizons: Sequence[int]) -> list[float]:
        """Values expected at ``step + h`` for each ``h`` (≥ 1), ``step`` being the last learned step."""

    def ready(self) -> bool:
        """Whether the model has seen enough data for its forecast to mean something."""

    def to_state(self) -> dict[str, Any]:
        """``{"kind", "params", "state"}``: everything needed to continue exactly."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ForecastingError(message)


def _num(value: float | None) -> float | None:
    """JSON has no NaN/inf: store them as None."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _fnum(value: float | None) -> float:
    return math.nan if value is None else float(value)


class LastValue:
    """Naive forecast: every horizon gets the last observed value."""

    kind: ClassVar[str] = "last_value"
    expensive: ClassVar[bool] = False
    __slots__ = ("_last", "name")

    def __init__(self) -> None:
        self.name = "last_value"
        self._last = math.nan

    def learn(self, step: int, y: float) -> None:
        self._last = y

    def forecast(self, step: int, horizons: Sequence[int]) -> list[float]:
        return [self._last] * len(horizons)

    def ready(self) -> bool:
        return self._last == self._last

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": {}, "state": {"last": _num(self._last)}}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> LastValue:
        m = cls(**params)
        m._last = _fnum(state["last"])
        return m


class MovingAverage:
    """Mean of the last ``window`` samples (gaps are skipped, not counted)."""

    kind: ClassVar[str] = "moving_average"
    expensive: ClassVar[bool] = False
    __slots__ = ("_buf", "_n", "_sum", "name", "window")

    def __init__(self, window: int) -> None:
        _check(isinstance(window, int) and window >= 1, f"window must be an int ≥ 1, not {window!r}")
        self.window = window
        self.name = f"ma{window}"
        self._buf: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self._n = 0

    def learn(self, step: int, y: float) -> None:
        buf = self._buf
        if len(buf) == self.window:
            self._sum -= buf[0]
        buf.append(y)
        self._sum += y
        self._n += 1
        if self._n % 1024 == 0:  # re-sum now and then so rounding cannot drift
            self._sum = math.fsum(buf)

    def forecast(self, step: int, horizons: Sequence[int]) -> list[float]:
        n = len(self._buf)
        value = self._sum / n if n else math.nan
        return [value] * len(horizons)

    def ready(self) -> bool:
        return len(self._buf) >= min(self.window, 3)

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": {"window": self.window},
            "state": {"buf": list(self._buf), "sum": self._sum, "n": self._n},
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> MovingAverage:
        m = cls(**params)
        m._buf.extend(float(v) for v in state["buf"])
        m._sum = float(state["sum"])
        m._n = int(state["n"])
        return m


class EWMA:
    """Exponentially weighted moving average (simple exponential smoothing), flat forecast."""

    kind: ClassVar[str] = "ewma"
    expensive: ClassVar[bool] = False
    __slots__ = ("_level", "_n", "alpha", "name")

    def __init__(self, alpha: float) -> None:
        _check(isinstance(alpha, (int, float)) and 0.0 < alpha <= 1.0, f"alpha must be in (0, 1], not {alpha!r}")
        self.alpha = float(alpha)
        self.name = f"ewma{self.alpha:g}"
        self._level = math.nan
        self._n = 0

    def learn(self, step: int, y: float) -> None:
        if self._n:
            self._level += self.alpha * (y - self._level)
        else:
            self._level = y
        self._n += 1

    def forecast(self, step: int, horizons: Sequence[int]) -> list[float]:
        return [self._level] * len(horizons)

    def ready(self) -> bool:
        return self._n >= 3

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": {"alpha": self.alpha}, "state": {"level": _num(self._level), "n": self._n}}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> EWMA:
        m = cls(**params)
        m._level = _fnum(state["level"])
        m._n = int(state["n"])
        return m


class SeasonalNaive:
    """The value one season ago: ``y[step + h - period]`` (last value until a season is seen)."""

    kind: ClassVar[str] = "seasonal_naive"
    expensive: ClassVar[bool] = False
    __slots__ = ("_first", "_last", "_last_step", "_ring", "_steps", "name", "period")

    def __init__(self, period: int) -> None:
        _check(isinstance(period, int) and period >= 2, f"period must be an int ≥ 2, not {period!r}")
        self.period = period
        self.name = f"seasonal_naive{period}"
        self._ring: list[float] = [math.nan] * period
        self._steps: list[int] = [-1] * period
        self._last = math.nan
        self._first = -1
        self._last_step = -1

    def learn(self, step: int, y: float) -> None:
        slot = step % self.period
        self._ring[slot] = y
        self._steps[slot] = step
        self._last = y
        self._last_step = step
        if self._first < 0:
            self._first = step

    def forecast(self, step: int, horizons: Sequence[int]) -> list[float]:
        out = []
        p = self.period
        for h in horizons:
            target = step + h - p
            while target > step:  # horizons beyond one season reuse the latest season
                target -= p
            slot = target % p
            seen = target >= self._first >= 0 and self._steps[slot] == target
            out.append(self._ring[slot] if seen else self._last)
        return out

    def ready(self) -> bool:
        return self._first >= 0 and self._last_step - self._first >= self.period

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": {"period": self.period},
            "state": {
                "ring": [_num(v) for v in self._ring],
                "steps": self._steps,
                "last": _num(self._last),
                "first": self._first,
                "last_step": self._last_step,
            },
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> SeasonalNaive:
        m = cls(**params)
        m._ring = [_fnum(v) for v in state["ring"]]
        m._steps = [int(s) for s in state["steps"]]
        m._last = _fnum(state["last"])
        m._first = int(state["first"])
        m._last_step = int(state["last_step"])
        return m


class DailyProfileEWMA:
    """EWMA of the deseasonalised series plus a learned seasonal (daily) profile.

    The season of ``period`` steps is cut into bins of ``bin_steps`` steps. Each bin keeps the
    mean of its latest occurrence; their average over the last season is the trailing season
    mean. The profile holds, per bin, the deviation of the series from that trailing mean,
    smoothed with rate ``beta`` (binning lets each bin learn on several samples per season,
    which matters when only days of data exist, and keeps the state small: a few numbers per
    bin whatever the sampling rate). Forecast: ``level + profile[bin(step + h)]`` where
    ``level`` is an EWMA (rate ``alpha``) of ``y - profile[bin(step)]``. Until one season has
    been seen the profile is zero, the model is an EWMA and it is not ready.
    """

    kind: ClassVar[str] = "profile_ewma"
    expensive: ClassVar[bool] = False
    __slots__ = (
        "_bin_count",
        "_bin_id",
        "_bin_sum",
        "_bins",
        "_first_bin",
        "_last",
        "_level",
        "_mean",
        "_profile",
        "_ready",
        "_recent",
        "_recent_ids",
        "_seen",
        "alpha",
        "beta",
        "bin_steps",
        "name",
        "period",
    )

    def __init__(self, alpha: float, period: int, bin_steps: int = 1, beta: float = 0.1) -> None:
        _check(0.0 < alpha <= 1.0, f"alpha must be in (0, 1], not {alpha!r}")
        _check(0.0 < beta <= 1.0, f"beta must be in (0, 1], not {beta!r}")
        _check(isinstance(period, int) and period >= 2, f"period must be an int ≥ 2, not {period!r}")
        _check(
            isinstance(bin_steps, int) and 1 <= bin_steps <= period and period % bin_steps == 0,
            f"bin_steps must divide period ({period}), not {bin_steps!r}",
        )
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.period = period
        self.bin_steps = bin_steps
        self.name = f"profile_ewma{self.alpha:g}"
        self._bins = period // bin_steps
        self._profile = [0.0] * self._bins
        self._seen = [0] * self._bins
        self._recent = [0.0] * self._bins  # mean of each bin's latest occurrence
        self._recent_ids = [-1] * self._bins  # its absolute bin number
        self._bin_id = -1
        self._bin_sum = 0.0
        self._bin_count = 0
        self._first_bin = -1
        self._mean = math.nan  # trailing season mean, refreshed when a bin closes
        self._level = math.nan
        self._last = math.nan
        self._ready = False

    def _close_bin(self) -> None:
        bins = self._bins
        slot = self._bin_id % bins
        self._recent[slot] = self._bin_sum / self._bin_count
        self._recent_ids[slot] = self._bin_id
        oldest = self._bin_id - bins
        kept = [v for v, i in zip(self._recent, self._recent_ids, strict=True) if i > oldest]
        # Half a season of bins at least, or the "season mean" would be a partial-day mean.
        self._mean = math.fsum(kept) / len(kept) if 2 * len(kept) >= bins else math.nan
        if not self._ready:
            self._ready = self._bin_id - self._first_bin >= bins and all(self._seen)

    def learn(self, step: int, y: float) -> None:
        bin_id = step // self.bin_steps
        if bin_id != self._bin_id:
            if self._bin_count:
                self._close_bin()
            self._bin_id = bin_id
            self._bin_sum = 0.0
            self._bin_count = 0
            if self._first_bin < 0:
                self._first_bin = bin_id
        self._bin_sum += y
        self._bin_count += 1
        b = bin_id % self._bins
        mean = self._mean
        if mean == mean:
            if self._seen[b]:
                self._profile[b] += self.beta * (y - mean - self._profile[b])
            else:
                self._profile[b] = y - mean
            self._seen[b] += 1
        z = y - self._profile[b] if self._ready else y
        level = self._level
        self._level = z if level != level else level + self.alpha * (z - level)
        self._last = y

    def forecast(self, step: int, horizons: Sequence[int]) -> list[float]:
        if not self._ready:
            return [self._last] * len(horizons)
        level, profile, width, bins = self._level, self._profile, self.bin_steps, self._bins
        return [level + profile[((step + h) // width) % bins] for h in horizons]

    def ready(self) -> bool:
        return self._ready

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": {"alpha": self.alpha, "period": self.period, "bin_steps": self.bin_steps, "beta": self.beta},
            "state": {
                "profile": self._profile,
                "seen": self._seen,
                "recent": self._recent,
                "recent_ids": self._recent_ids,
                "bin_id": self._bin_id,
                "bin_sum": self._bin_sum,
                "bin_count": self._bin_count,
                "first_bin": self._first_bin,
                "mean": _num(self._mean),
                "level": _num(self._level),
                "last": _num(self._last),
                "ready": self._ready,
            },
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> DailyProfileEWMA:
        m = cls(**params)
        m._profile = [float(v) for v in state["profile"]]
        m._seen = [int(v) for v in state["seen"]]
        m._recent = [float(v) for v in state["recent"]]
        m._recent_ids = [int(v) for v in state["recent_ids"]]
        if not len(m._profile) == len(m._seen) == len(m._recent) == len(m._recent_ids) == m._bins:
            raise StateError("profile state does not match period / bin_steps")
        m._bin_id = int(state["bin_id"])
        m._bin_sum = float(state["bin_sum"])
        m._bin_count = int(state["bin_count"])
        m._first_bin = int(state["first_bin"])
        m._mean = _fnum(state["mean"])
        m._level = _fnum(state["level"])
        m._last = _fnum(state["last"])
        m._ready = bool(state["ready"])
        return m


# --- River models ------------------------------------------------------------------------------


class HoltWintersModel:
    """River ``time_series.HoltWinters`` with its state exported explicitly.

    River needs ``max(2, seasonality)`` values before it can forecast; until then the forecast
    is the last value. The exported state is River's own: the level/trend/season deques, the
    initial values and the initialised flag.
    """

    kind: ClassVar[str] = "holt_winters"
    expensive: ClassVar[bool] = False
    __slots__ = ("_last", "_model", "alpha", "beta", "gamma", "multiplicative", "name", "seasonality")

    def __init__(
        self,
        alpha: float,
        beta: float | None = None,
        gamma: float | None = None,
        seasonality: int = 0,
        multiplicative: bool = False,
    ) -> None:
        from river import time_series

        _check(0.0 < alpha <= 1.0, f"alpha must be in (0, 1], not {alpha!r}")
        _check(beta is None or 0.0 <= beta <= 1.0, f"beta must be in [0, 1], not {beta!r}")
        _check(gamma is None or 0.0 <= gamma <= 1.0, f"gamma must be in [0, 1], not {gamma!r}")
        _check(
            isinstance(seasonality, int) and seasonality >= 0, f"seasonality must be an int ≥ 0, not {seasonality!r}"
        )
        try:
            self._model = time_series.HoltWinters(
                alpha=alpha, beta=beta, gamma=gamma, seasonality=seasonality, multiplicative=multiplicative
            )
        except ValueError as exc:
            raise ForecastingError(f"bad Holt-Winters parameters: {exc}") from exc
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.seasonality, self.multiplicative = seasonality, multiplicative
        self.name = "holt_winters"
        self._last = math.nan

    def learn(self, step: int, y: float) -> None:
        self._model.learn_one(y)
        self._last = y

    def forecast(self, step: int, horizons: Sequence[int]) -> list[float]:
        m = self._model
        if not m._initialized:
            return [self._last] * len(horizons)
        # River's HoltWinters.forecast formula, evaluated at the requested horizons only
        # (River builds the whole path up to the largest one).
        level = m.level[-1]
        trend = m.trend[-1] if m.trend else 0.0
        if not m.season:
            return [level + h * trend for h in horizons]
        season, period = m.season, self.seasonality
        if self.multiplicative:
            return [(level + h * trend) * season[-period + (h - 1) % period] for h in horizons]
        return [level + h * trend + season[-period + (h - 1) % period] for h in horizons]

    def ready(self) -> bool:
        return bool(self._model._initialized)

    def to_state(self) -> dict[str, Any]:
        m = self._model
        return {
            "kind": self.kind,
            "params": {
                "alpha": self.alpha,
                "beta": self.beta,
                "gamma": self.gamma,
                "seasonality": self.seasonality,
                "multiplicative": self.multiplicative,
            },
            "state": {
                "river": {
                    "version": 1,
                    "level": list(m.level),
                    "trend": None if m.trend is None else list(m.trend),
                    "season": None if m.season is None else list(m.season),
                    "first_values": list(m._first_values),
                    "initialized": m._initialized,
                },
                "last": _num(self._last),
            },
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> HoltWintersModel:
        w = cls(**params)
        river = state["river"]
        if river.get("version") != 1:
            raise StateError(f"unknown Holt-Winters state version {river.get('version')!r}")
        m = w._model
        m.level.extend(float(v) for v in river["level"])
        if (river["trend"] is None) != (m.trend is None) or (river["season"] is None) != (m.season is None):
            raise StateError("Holt-Winters state does not match its parameters (trend/season)")
        if m.trend is not None:
            m.trend.extend(float(v) for v in river["trend"])
        if m.season is not None:
            m.season.extend(float(v) for v in river["season"])
        m._first_values = [float(v) for v in river["first_values"]]
        m._initialized = bool(river["initialized"])
        w._last = _fnum(state["last"])
        return w


class SnarimaxModel:
    """River ``time_series.SNARIMAX(p, d, q)`` on the series divided by ``scale``.

    River's default regressor (``StandardScaler | LinearRegression`` with SGD) diverges on raw
    CPU percentages; dividing by the physical range and a smaller learning rate keep it stable.
    It learns every sample (its lags and errors need every value) but its multi-step forecast
    is the costly part, so the path is recomputed every ``refresh_every`` samples and in between
    re-anchored to the latest value: ``y_now + path[s + h] - path[s]``, ``s`` steps after the
    path's origin. The exported state is River's (lag deques, scaler statistics, weights,
    intercept, optimizer iteration count) plus that cached path.
    """

    kind: ClassVar[str] = "snarimax"
    expensive: ClassVar[bool] = True
    __slots__ = (
        "_anchor_step",
        "_features",
        "_last",
        "_model",
        "_n",
        "_path",
        "clip_gradient",
        "d",
        "lr",
        "max_horizon",
        "name",
        "p",
        "q",
        "refresh_every",
        "scale",
    )

    def __init__(
        self,
        p: int = 2,
        d: int = 1,
        q: int = 2,
        *,
        scale: float = 100.0,
        lr: float = 0.001,
        clip_gradient: float = 1.0,
        max_horizon: int = 12,
        refresh_every: int = 8,
    ) -> None:
        for label, value in (("p", p), ("d", d), ("q", q)):
            _check(isinstance(value, int) and value >= 0, f"{label} must be an int ≥ 0, not {value!r}")
        _check(p + q >= 1, "SNARIMAX needs p or q ≥ 1")
        _check(scale > 0, f"scale must be positive, not {scale!r}")
        _check(lr > 0, f"lr must be positive, not {lr!r}")
        _check(clip_gradient > 0, f"clip_gradient must be positive, not {clip_gradient!r}")
        _check(
            isinstance(max_horizon, int) and max_horizon >= 1, f"max_horizon must be an int ≥ 1, not {max_horizon!r}"
        )
        _check(
            isinstance(refresh_every, int) and refresh_every >= 1,
            f"refresh_every must be an int ≥ 1, not {refresh_every!r}",
        )
        self.p, self.d, self.q = p, d, q
        self.scale, self.lr, self.clip_gradient = float(scale), float(lr), float(clip_gradient)
        self.max_horizon, self.refresh_every = max_horizon, refresh_every
        self.name = "snarimax"
        self._features = [f"y-{t + 1}" for t in range(p)] + [f"e-{t + 1}" for t in range(q)]
        self._model = self._build()
        self._last = math.nan
        self._n = 0
        self._path: list[float] = []
        self._anchor_step = 0

    def _build(self) -> Any:
        from river import linear_model, optim, preprocessing, time_series

        regressor = preprocessing.StandardScaler() | linear_model.LinearRegression(
            optimizer=optim.SGD(self.lr), intercept_lr=self.lr, clip_gradient=self.clip_gradient
        )
        return time_series.SNARIMAX(p=self.p, d=self.d, q=self.q, regressor=regressor)

    def learn(self, step: int, y: float) -> None:
        self._model.learn_one(y / self.scale)
        self._last = y
        self._n += 1
        if self._n % self.refresh_every == 0 and self.ready():
            self._refresh(step)

    def _refresh(self, step: int) -> None:
        raw = self.river_path(self.max_horizon + self.refresh_every)
        scale = self.scale
        self._path = [self._last] + [v * scale for v in raw]
        self._anchor_step = step

    def river_path(self, horizon: int) -> list[float]:
        """River's ``SNARIMAX.forecast(horizon)`` (on the scaled series), computed directly.

        Same recursion as River (lags of the differenced series and of the errors, errors
        set to 0 in the future, standard scaling, linear model, undifferencing) on plain
        lists, without River's per-step dicts and pipeline dispatch: several times cheaper,
        and equal to River's output up to float summation order (checked in the tests).
        """
        m = self._model
        scaler = m.regressor["StandardScaler"]
        linear = m.regressor["LinearRegression"]
        weights = linear._weights.to_dict()
        intercept = linear.intercept
        means, vars_ = scaler.means, scaler.vars
        # Per feature: (mean, 1/std or 0 when the variance is 0, weight).
        coef = []
        for name in self._features:
            var = vars_.get(name, 0.0)
            coef.append((means.get(name, 0.0), 1.0 / var**0.5 if var else 0.0, weights.get(name, 0.0)))
        ar, ma = coef[: self.p], coef[self.p :]
        undiff = sorted((t, c) for t, c in m.differencer.coeffs.items() if t)
        y_hist = list(m.y_hist)
        y_diff = list(m.y_diff)
        errors = list(m.errors)
        lags_full = len(y_diff) >= 2 and len(errors) >= 2 and bool(y_hist)
        if len(ar) == len(ma) == 2 and lags_full and [t for t, _c in undiff] == [1]:
            return _arima22_path(horizon, intercept, ar, ma, undiff[0][1], y_diff, errors, y_hist[0])
        return _general_path(horizon, intercept, ar, ma, undiff, y_diff, errors, y_hist)

    def forecast(self, step: int, horizons: Sequence[int]) -> list[float]:
        path = self._path
        if not path:
            return [self._last] * len(horizons)
        s = min(step - self._anchor_step, len(path) - 1)
        base = self._last - path[s]
        end = len(path) - 1
        return [base + path[min(s + h, end)] for h in horizons]

    def ready(self) -> bool:
        return self._n > self.d + max(self.p, self.q) + 10

    def to_state(self) -> dict[str, Any]:
        m = self._model
        scaler = m.regressor["StandardScaler"]
        linear = m.regressor["LinearRegression"]
        return {
            "kind": self.kind,
            "params": {
                "p": self.p,
                "d": self.d,
                "q": self.q,
                "scale": self.scale,
                "lr": self.lr,
                "clip_gradient": self.clip_gradient,
                "max_horizon": self.max_horizon,
                "refresh_every": self.refresh_every,
            },
            "state": {
                "river": {
                    "version": 1,
                    "y_hist": list(m.y_hist),
                    "y_diff": list(m.y_diff),
                    "errors": list(m.errors),
                    "scaler_counts": dict(scaler.counts),
                    "scaler_means": dict(scaler.means),
                    "scaler_vars": dict(scaler.vars),
                    "weights": linear._weights.to_dict(),
                    "intercept": linear.intercept,
                    "optimizer_iterations": linear.optimizer.n_iterations,
                },
                "last": _num(self._last),
                "n": self._n,
                "path": self._path,
                "anchor_step": self._anchor_step,
            },
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> SnarimaxModel:
        from river import utils

        w = cls(**params)
        river = state["river"]
        if river.get("version") != 1:
            raise StateError(f"unknown SNARIMAX state version {river.get('version')!r}")
        m = w._model
        m.y_hist.extend(float(v) for v in river["y_hist"])
        m.y_diff.extend(float(v) for v in river["y_diff"])
        m.errors.extend(float(v) for v in river["errors"])
        scaler = m.regressor["StandardScaler"]
        linear = m.regressor["LinearRegression"]
        scaler.counts.update({k: int(v) for k, v in river["scaler_counts"].items()})
        scaler.means.update({k: float(v) for k, v in river["scaler_means"].items()})
        scaler.vars.update({k: float(v) for k, v in river["scaler_vars"].items()})
        linear._weights = utils.VectorDict({k: float(v) for k, v in river["weights"].items()})
        linear.intercept = float(river["intercept"])
        linear.optimizer.n_iterations = int(river["optimizer_iterations"])
        w._last = _fnum(state["last"])
        w._n = int(state["n"])
        w._path = [float(v) for v in state["path"]]
        w._anchor_step = int(state["anchor_step"])
        return w


def _general_path(
    horizon: int,
    intercept: float,
    ar: list[tuple[float, float, float]],
    ma: list[tuple[float, float, float]],
    undiff: list[tuple[int, float]],
    y_diff: list[float],
    errors: list[float],
    y_hist: list[float],
) -> list[float]:
    """:meth:`SnarimaxModel.river_path`'s recursion for any order (lists newest first, consumed)."""
    out = []
    for _ in range(horizon):
        pred = intercept
        for (mean, inv, w), value in zip(ar, y_diff, strict=False):
            pred += w * ((value - mean) * inv)
        for (mean, inv, w), value in zip(ma, errors, strict=False):
            pred += w * ((value - mean) * inv)
        y_diff.insert(0, pred)
        forecast = pred
        for t, c in undiff:
            if t - 1 >= len(y_hist):
                break
            forecast -= c * y_hist[t - 1]
        y_hist.insert(0, forecast)
        errors.insert(0, 0.0)
        out.append(forecast)
    return out


def _arima22_path(
    horizon: int,
    intercept: float,
    ar: list[tuple[float, float, float]],
    ma: list[tuple[float, float, float]],
    c1: float,
    y_diff: list[float],
    errors: list[float],
    y_last: float,
) -> list[float]:
    """:meth:`SnarimaxModel.river_path` for p = q = 2 and one differencing lag, unrolled.

    The default order (2, 1, 2) once its lags are full: the same operations in the same order
    as the general loop (so the same floats), about three times faster; it is most of the
    refresh cost of the worker's CPU series.
    """
    (a0m, a0i, a0w), (a1m, a1i, a1w) = ar
    (m0m, m0i, m0w), (m1m, m1i, m1w) = ma
    d0, d1 = y_diff[0], y_diff[1]
    e0, e1 = errors[0], errors[1]
    out = []
    for _ in range(horizon):
        pred = intercept
        pred += a0w * ((d0 - a0m) * a0i)
        pred += a1w * ((d1 - a1m) * a1i)
        pred += m0w * ((e0 - m0m) * m0i)
        pred += m1w * ((e1 - m1m) * m1i)
        d0, d1 = pred, d0
        e0, e1 = 0.0, e0  # future errors are 0
        y_last = pred - c1 * y_last
        out.append(y_last)
    return out


_KINDS: dict[str, Callable[[dict[str, Any], dict[str, Any]], ForecastModel]] = {
    cls.kind: cls.from_state  # type: ignore[attr-defined]
    for cls in (LastValue, MovingAverage, EWMA, SeasonalNaive, DailyProfileEWMA, HoltWintersModel, SnarimaxModel)
}


def model_from_state(state: dict[str, Any]) -> ForecastModel:
    """Rebuild a model from :meth:`ForecastModel.to_state` output."""
    try:
        builder = _KINDS[state["kind"]]
        return builder(dict(state["params"]), state["state"])
    except KeyError as exc:
        raise StateError(f"not a model state (missing or unknown {exc})") from exc
    except (TypeError, ValueError) as exc:
        raise StateError(f"bad {state.get('kind')!r} model state: {exc}") from exc
