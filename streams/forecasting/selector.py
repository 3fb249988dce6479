"""Online model choice per horizon by rolling error, with demotion and a reactive fallback.

For each horizon separately the selector keeps, per candidate, a long and a short
exponentially weighted mean absolute error of the forecasts that candidate issued ``h`` steps
before each observed value. The forecast at that horizon is the mean of the ``top_k``
candidates with the lowest long error (averaging a few good candidates is steadier than
betting on one). A chosen candidate whose short error rises above ``demote_ratio`` times the
last-value model's short error is demoted at that horizon for ``demote_steps`` steps.
A horizon is *reliable* once ``warmup`` errors were scored and the combined forecast's long
error is no worse than ``reliable_ratio`` times last-value's; otherwise the forecaster falls
back to reactive behaviour (last value, flagged unreliable) at that horizon.

Candidate 0 must be the last-value model: it is the reactive reference and never demoted.
Before warm-up the choice is ``prior`` (a fixed set, e.g. a short moving average).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.forecasting.errors import ForecastingError, StateError

__all__ = ["HorizonSelector", "SelectorParams"]


@dataclass(frozen=True, slots=True)
class SelectorParams:
    top_k: int = 3
    half_life: float = 576.0
    short_half_life: float = 36.0
    demote_ratio: float = 1.5
    demote_steps: int = 288
    warmup: int = 24
    reliable_ratio: float = 1.05

    def __post_init__(self) -> None:
        if not (isinstance(self.top_k, int) and self.top_k >= 1):
            raise ForecastingError(f"top_k must be an int ≥ 1, not {self.top_k!r}")
        if not (self.half_life > 0 and self.short_half_life > 0):
            raise ForecastingError("half lives must be positive")
        if not self.demote_ratio > 1:
            raise ForecastingError(f"demote_ratio must be > 1, not {self.demote_ratio!r}")
        if not (isinstance(self.demote_steps, int) and self.demote_steps >= 0):
            raise ForecastingError(f"demote_steps must be an int ≥ 0, not {self.demote_steps!r}")
        if not (isinstance(self.warmup, int) and self.warmup >= 1):
            raise ForecastingError(f"warmup must be an int ≥ 1, not {self.warmup!r}")
        if not self.reliable_ratio > 0:
            raise ForecastingError(f"reliable_ratio must be positive, not {self.reliable_ratio!r}")


def _rate(half_life: float) -> float:
    return 1.0 - 0.5 ** (1.0 / half_life)


class HorizonSelector:
    """Per-horizon rolling scores of ``n_candidates`` models and the choice made from them."""

    __slots__ = (
        "_long_rate",
        "_short_rate",
        "chosen",
        "combined",
        "demoted_until",
        "demotions",
        "long",
        "n",
        "n_candidates",
        "n_horizons",
        "params",
        "prior",
        "reliable",
        "short",
        "use",
    )

    def __init__(
        self, n_candidates: int, n_horizons: int, params: SelectorParams | None = None, prior: Sequence[int] = (0,)
    ) -> None:
        if n_candidates < 1 or n_horizons < 1:
            raise ForecastingError("need at least one candidate and one horizon")
        if not prior or any(not 0 <= c < n_candidates for c in prior):
            raise ForecastingError(f"prior must name candidates 0 … {n_candidates - 1}, not {prior!r}")
        self.prior = list(prior)
        self.params = params or SelectorParams()
        self.n_candidates = n_candidates
        self.n_horizons = n_horizons
        self._long_rate = _rate(self.params.half_life)
        self._short_rate = _rate(self.params.short_half_life)
        self.long = [[0.0] * n_candidates for _ in range(n_horizons)]
        self.short = [[0.0] * n_candidates for _ in range(n_horizons)]
        self.combined = [0.0] * n_horizons  # long error of the forecast actually issued
        self.n = [0] * n_horizons
        self.demoted_until = [[-1] * n_candidates for _ in range(n_horizons)]
        self.demotions = 0
        self.chosen: list[list[int]] = [list(self.prior) for _ in range(n_horizons)]
        # Whether horizon i was warmed up and no worse than reactive at the last selection.
        self.reliable = [False] * n_horizons
        # Whether horizon i uses the chosen candidates (reliable, or the prior while warming up);
        # otherwise the forecaster is reactive there.
        self.use = [True] * n_horizons

    def observe(self, i: int, predictions: Sequence[float], issued: float, y: float, step: int) -> None:
        """Score the forecasts made ``h_i`` steps before ``step`` against the value ``y`` seen now.

        ``predictions`` are the candidates' forecasts then, ``issued`` the combined one.
        """
        n = self.n[i] + 1
        self.n[i] = n
        wl = max(1.0 / n, self._long_rate)
        ws = max(1.0 / n, self._short_rate)
        self.long[i] = [s + wl * (abs(y - p) - s) for s, p in zip(self.long[i], predictions, strict=True)]
        self.combined[i] += wl * (abs(y - issued) - self.combined[i])
        # Short errors only matter for demotion: kept for last-value and the chosen ones.
        short = self.short[i]
        chosen = self.chosen[i]
        short[0] += ws * (abs(y - predictions[0]) - short[0])
        for c in chosen:
            if c:
                short[c] += ws * (abs(y - predictions[c]) - short[c])
        if n < self.params.warmup:
            return
        limit = self.params.demote_ratio * short[0]
        for c in chosen:
            if c and short[c] > limit:
                self.demoted_until[i][c] = step + self.params.demote_steps
                self.demotions += 1

    def select(self, i: int, step: int, ready: Sequence[bool]) -> list[int]:
        """Re-choose the candidates used at horizon ``i`` (those not ready or demoted are skipped)."""
        if self.n[i] < self.params.warmup:
            self.reliable[i] = False
            self.use[i] = True
            return self.chosen[i]  # the prior
        long = self.long[i]
        until = self.demoted_until[i]
        pool = [c for c in range(self.n_candidates) if ready[c] and until[c] < step]
        pool.sort(key=long.__getitem__)
        chosen = pool[: self.params.top_k] or [0]
        previous = self.chosen[i]
        short = self.short[i]
        for c in chosen:
            if c not in previous:
                short[c] = long[c]  # start its short error where its long one is
        self.chosen[i] = chosen
        combined = self.combined[i]
        self.reliable[i] = self.use[i] = combined <= self.params.reliable_ratio * long[0] or combined == 0.0
        return chosen

    def warming_up(self, i: int) -> bool:
        """Whether horizon ``i`` has scored fewer than ``warmup`` forecasts (the prior is in use)."""
        return self.n[i] < self.params.warmup

    def to_state(self) -> dict[str, Any]:
        return {
            "long": self.long,
            "short": self.short,
            "combined": self.combined,
            "n": self.n,
            "demoted_until": self.demoted_until,
            "demotions": self.demotions,
            "chosen": self.chosen,
            "reliable": self.reliable,
            "use": self.use,
        }

    @classmethod
    def from_state(
        cls, n_candidates: int, n_horizons: int, params: SelectorParams, prior: Sequence[int], state: dict[str, Any]
    ) -> HorizonSelector:
        sel = cls(n_candidates, n_horizons, params, prior)
        try:
            sel.long = [[float(v) for v in row] for row in state["long"]]
            sel.short = [[float(v) for v in row] for row in state["short"]]
            sel.combined = [float(v) for v in state["combined"]]
            sel.n = [int(v) for v in state["n"]]
            sel.demoted_until = [[int(v) for v in row] for row in state["demoted_until"]]
            sel.demotions = int(state["demotions"])
            sel.chosen = [[int(c) for c in row] for row in state["chosen"]]
            sel.reliable = [bool(v) for v in state["reliable"]]
            sel.use = [bool(v) for v in state["use"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"bad selector state: {exc}") from exc
        shapes = (len(sel.long), len(sel.short), len(sel.n), len(sel.chosen), len(sel.demoted_until))
        if any(s != n_horizons for s in shapes) or any(len(r) != n_candidates for r in sel.long + sel.short):
            raise StateError("selector state does not match the candidates and horizons")
        if not all(math.isfinite(v) for row in sel.long + sel.short for v in row):
            raise StateError("selector state has non-finite scores")
        return sel
