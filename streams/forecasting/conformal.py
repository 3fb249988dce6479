"""Online conformal prediction intervals on horizon residuals, with tracked coverage.

Each horizon has its own interval ``[mean + q_lo, mean + q_hi]`` where ``q_lo`` and ``q_hi``
follow the ``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` quantiles of the signed
residuals ``y - mean`` of that horizon's past forecasts. The quantiles are tracked online
(quantile tracking, the "P" part of Angelopoulos, Candès & Tibshirani, *Conformal PID
Control for Time Series Prediction*, NeurIPS 2023):

    q ← q + η · (1{miss} - a)      (per side, a = (1 - coverage) / 2)

which holds long-run miscoverage at the nominal level for any sequence, so the interval
recalibrates itself when the residuals drift. The step ``η`` is ``lr`` times a running mean
absolute residual, so the same ``lr`` works for series of any scale. Separate quantiles give
skewed intervals (CPU spikes upwards). The first ``warm`` residuals are used as an empirical
sample to start the trackers where they belong.

>>> t = HorizonInterval(coverage=0.8)
>>> for y in [-1.0, 1.0] * 50:
...     t.observe(y, mean=0.0, low=t.q_lo, high=t.q_hi)
>>> -1.5 < t.q_lo < 0.0 < t.q_hi < 1.5
True
"""

from __future__ import annotations

import math
from typing import Any

from streams.forecasting.errors import ForecastingError, StateError

__all__ = ["HorizonInterval"]


class HorizonInterval:
    """The interval offsets of one horizon and the coverage they achieved."""

    __slots__ = (
        "_warm_sample",
        "coverage",
        "coverage_rate",
        "hits",
        "lr",
        "n",
        "q_hi",
        "q_lo",
        "recent_coverage",
        "scale",
        "scale_rate",
        "tau_hi",
        "tau_lo",
        "warm",
    )

    def __init__(
        self, coverage: float = 0.9, *, lr: float = 0.05, warm: int = 20, coverage_half_life: float = 1000.0
    ) -> None:
        if not 0.0 < coverage < 1.0:
            raise ForecastingError(f"coverage must be in (0, 1), not {coverage!r}")
        if not lr > 0:
            raise ForecastingError(f"lr must be positive, not {lr!r}")
        if not (isinstance(warm, int) and warm >= 2):
            raise ForecastingError(f"warm must be an int ≥ 2, not {warm!r}")
        if not coverage_half_life > 0:
            raise ForecastingError("coverage_half_life must be positive")
        self.coverage = coverage
        self.tau_lo = (1.0 - coverage) / 2.0
        self.tau_hi = 1.0 - self.tau_lo
        self.lr = lr
        self.warm = warm
        self.coverage_rate = 1.0 - 0.5 ** (1.0 / coverage_half_life)
        self.scale_rate = self.coverage_rate
        self.q_lo = 0.0
        self.q_hi = 0.0
        self.scale = 0.0
        self.n = 0
        self.hits = 0
        self.recent_coverage = math.nan
        self._warm_sample: list[float] = []

    @property
    def ready(self) -> bool:
        return self.n >= self.warm

    def observe(self, y: float, mean: float, low: float, high: float) -> None:
        """Learn from the value ``y`` that the forecast ``mean`` with interval ``[low, high]`` targeted.

        The trackers move on the interval's actual misses (``y < low``, ``y > high``), after
        clamping to physical bounds, so ties and bounds are accounted for as they are scored.
        """
        residual = y - mean
        below = y < low
        above = y > high
        covered = not (below or above)
        self.n += 1
        n = self.n
        self.hits += covered
        w = max(1.0 / n, self.coverage_rate)
        self.recent_coverage = float(covered) if n == 1 else self.recent_coverage + w * (covered - self.recent_coverage)
        if n <= self.warm:
            self.scale += (abs(residual) - self.scale) / n
            sample = self._warm_sample
            sample.append(residual)
            sample.sort()
            last = len(sample) - 1
            self.q_lo = min(0.0, sample[math.floor(self.tau_lo * last)])
            self.q_hi = max(0.0, sample[math.ceil(self.tau_hi * last)])
            if n == self.warm:
                self._warm_sample = []
            return
        eta = self.lr * self.scale
        # A miss widens that side by η(1 - a), a hit narrows it by η·a (a: the side's share of
        # misses): the long-run miss rate of each side settles at a, whatever the residuals,
        # ties included.
        # The offsets may both fall on one side of the point forecast when it is biased (a
        # mean on a skewed series); they only never cross.
        if below:
            self.q_lo -= eta * self.tau_hi
        else:
            self.q_lo += eta * self.tau_lo
        if above:
            self.q_hi += eta * self.tau_hi
        else:
            self.q_hi -= eta * self.tau_lo
        if self.q_lo > self.q_hi:
            self.q_lo = self.q_hi = 0.5 * (self.q_lo + self.q_hi)
        # The step size follows the residuals' scale slowly and only after the step: a step
        # that grows right when a spike misses would bias the interval wide.
        self.scale += self.scale_rate * (abs(residual) - self.scale)

    def to_state(self) -> dict[str, Any]:
        return {
            "q_lo": self.q_lo,
            "q_hi": self.q_hi,
            "scale": self.scale,
            "n": self.n,
            "hits": self.hits,
            "recent_coverage": None if math.isnan(self.recent_coverage) else self.recent_coverage,
            "warm_sample": self._warm_sample,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], coverage: float, *, lr: float, warm: int, coverage_half_life: float
    ) -> HorizonInterval:
        t = cls(coverage, lr=lr, warm=warm, coverage_half_life=coverage_half_life)
        try:
            t.q_lo = float(state["q_lo"])
            t.q_hi = float(state["q_hi"])
            t.scale = float(state["scale"])
            t.n = int(state["n"])
            t.hits = int(state["hits"])
            rc = state["recent_coverage"]
            t.recent_coverage = math.nan if rc is None else float(rc)
            t._warm_sample = [float(v) for v in state["warm_sample"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"bad interval state: {exc}") from exc
        return t
