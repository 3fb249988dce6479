"""External events inside the forecast: declared effects, and effects learned from past occurrences.

An event (an ingestion peak, a batch window, …) concerns one subject during ``[start_at,
end_at)`` and may declare its expected effect as a ``factor`` (times the normal forecast) and/or a
``delta`` (+ percentage points). Inside the window the forecast is adjusted by the effect.

PLBA also learns how large the effect of each (event kind, subject) really was: when an
occurrence ends, the ratio of the mean value observed inside the window to the un-adjusted
forecast made just before it started (the counterfactual "no event" level) updates an EWMA of
that ratio. The next occurrence of the same kind for the same subject uses the learned ratio
instead of the declared effect, and the forecast says so (``source``: ``"learned"``).

While an event is active the candidate models learn the value with the effect taken out, so they
keep tracking the normal level and do not mistake the peak for the new normal.

>>> fx = EventEffects()
>>> peak = ActiveEvent("ingestion_peak", "wl-1", start_at=100.0, end_at=200.0, factor=2.0)
>>> fx.effect(peak)
(2.0, 0.0, 'declared')
>>> _ = fx.observe(100.0, 30.0, [peak], baseline=10.0)
>>> _ = fx.observe(150.0, 30.0, [peak], baseline=10.0)
>>> fx.close_due(200.0)
1
>>> fx.effect(peak)
(3.0, 0.0, 'learned')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.forecasting.errors import ForecastingError, StateError

__all__ = ["ActiveEvent", "EventEffects"]


@dataclass(frozen=True, slots=True)
class ActiveEvent:
    """An event window that concerns one subject, with its declared effect (if any)."""

    kind: str
    subject: str
    start_at: float
    end_at: float
    factor: float | None = None
    delta: float | None = None

    def __post_init__(self) -> None:
        if not self.kind or not isinstance(self.kind, str):
            raise ForecastingError("an event needs a kind")
        if not isinstance(self.subject, str):
            raise ForecastingError("an event subject must be a string")
        if not (math.isfinite(self.start_at) and math.isfinite(self.end_at) and self.end_at > self.start_at):
            raise ForecastingError(
                f"event window must be finite with end_at > start_at, not [{self.start_at}, {self.end_at})"
            )
        if self.factor is not None and not (math.isfinite(self.factor) and self.factor > 0):
            raise ForecastingError(f"event factor must be positive, not {self.factor!r}")
        if self.delta is not None and not math.isfinite(self.delta):
            raise ForecastingError(f"event delta must be finite, not {self.delta!r}")

    def covers(self, at: float) -> bool:
        return self.start_at <= at < self.end_at

    @property
    def key(self) -> str:
        return f"{self.kind}\x1f{self.subject}"


class EventEffects:
    """Learned effect per (kind, subject) and the occurrences being observed right now."""

    __slots__ = ("_open", "learn_rate", "learned", "max_learned", "min_baseline")

    def __init__(self, learn_rate: float = 0.5, *, min_baseline: float = 1e-6, max_learned: int = 256) -> None:
        if not 0.0 < learn_rate <= 1.0:
            raise ForecastingError(f"learn_rate must be in (0, 1], not {learn_rate!r}")
        if not max_learned >= 1:
            raise ForecastingError("max_learned must be ≥ 1")
        self.learn_rate = learn_rate
        self.min_baseline = min_baseline
        self.max_learned = max_learned
        # key -> [ratio, count]; insertion order = least recently learned first (bounded).
        self.learned: dict[str, list[float]] = {}
        # occurrence key -> [baseline, sum, n, end_at]
        self._open: dict[str, list[float]] = {}

    def effect(self, event: ActiveEvent) -> tuple[float, float, str]:
        """(factor, delta, source) to apply for ``event``: learned if known, else declared."""
        known = self.learned.get(event.key)
        if known is not None:
            return known[0], 0.0, "learned"
        return (
            (1.0 if event.factor is None else event.factor),
            (0.0 if event.delta is None else event.delta),
            "declared",
        )

    def combined(self, events: Sequence[ActiveEvent], at: float) -> tuple[float, float, list[ActiveEvent]]:
        """Composed (factor, delta) of the events covering ``at`` and those events."""
        factor, delta, hit = 1.0, 0.0, []
        for e in events:
            if e.covers(at):
                f, d, _ = self.effect(e)
                factor *= f
                delta = delta * f + d
                hit.append(e)
        return factor, delta, hit

    def observe(self, at: float, y: float, events: Sequence[ActiveEvent], baseline: float) -> float:
        """Record ``y`` for the occurrences covering ``at``; return ``y`` with their effect removed.

        ``baseline`` is the un-adjusted forecast before this sample; it is kept as an
        occurrence's counterfactual level when that occurrence is first seen.
        """
        self.close_due(at)
        factor, delta, hit = self.combined(events, at)
        for e in hit:
            okey = f"{e.key}\x1f{e.start_at!r}"
            occ = self._open.get(okey)
            if occ is None:
                occ = self._open[okey] = [baseline, 0.0, 0.0, e.end_at]
            occ[1] += y
            occ[2] += 1
        return (y - delta) / factor

    def close_due(self, at: float) -> int:
        """Finish the occurrences whose window ended by ``at``; returns how many learned an effect."""
        learned = 0
        for okey in [k for k, occ in self._open.items() if occ[3] <= at]:
            baseline, total, n, _ = self._open.pop(okey)
            if n and baseline > self.min_baseline:
                key = okey.rsplit("\x1f", 1)[0]
                ratio = (total / n) / baseline
                known = self.learned.pop(key, None)
                if known is None:
                    known = [ratio, 1.0]
                else:
                    known = [known[0] + self.learn_rate * (ratio - known[0]), known[1] + 1]
                self.learned[key] = known
                while len(self.learned) > self.max_learned:
                    del self.learned[next(iter(self.learned))]
                learned += 1
        return learned

    @property
    def active(self) -> bool:
        return bool(self._open)

    def describe(self, event: ActiveEvent, factor: float, delta: float) -> dict[str, Any]:
        """The event part of a forecast record."""
        known = self.learned.get(event.key)
        return {
            "kind": event.kind,
            "subject": event.subject,
            "start_at": event.start_at,
            "end_at": event.end_at,
            "source": "learned" if known is not None else "declared",
            "factor": factor,
            "delta": delta,
            "declared_factor": event.factor,
            "declared_delta": event.delta,
            "learned_factor": None if known is None else known[0],
            "learned_count": 0 if known is None else int(known[1]),
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "learned": {k: list(v) for k, v in self.learned.items()},
            "open": {k: list(v) for k, v in self._open.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], learn_rate: float) -> EventEffects:
        fx = cls(learn_rate)
        try:
            fx.learned = {str(k): [float(v[0]), float(v[1])] for k, v in state["learned"].items()}
            fx._open = {str(k): [float(x) for x in v] for k, v in state["open"].items()}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StateError(f"bad event state: {exc}") from exc
        return fx
