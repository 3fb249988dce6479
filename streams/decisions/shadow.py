"""Shadow scoring (ARCHITECTURE §6.8): recommendations scored against what actually happened.

In ``shadow`` (or ``recommend``) mode nobody acts on the orders, so the utilisation that follows
is the counterfactual the recommendation was about. Feed the scorer every decision and every
actual node utilisation sample; it matches them per (node, resource):

* a recommendation issued at ``t`` predicting a breach at ``b`` is a **true positive** if the node
  was actually over its threshold at some sample in ``[t, b + tolerance]``; it is still
  *pending* while that window is open, and a **false positive** once it closed without one;
* an overload **episode** (first over-threshold sample after one at or below it) is **recalled**
  if some recommendation was issued in ``[start - lookback, start]`` and predicted a breach no
  earlier than ``start - tolerance``; otherwise it is a **false negative**.

>>> s = ShadowScorer(tolerance_seconds=300)
>>> s.observe("n1", "cpu", 0.0, 0.5, 0.85)
>>> s.record_prediction("n1", "cpu", 0.0, 300.0)
>>> s.observe("n1", "cpu", 300.0, 0.95, 0.85)
>>> s.score(10_000.0).precision, s.score(10_000.0).recall
(1.0, 1.0)
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from streams.decisions.orders import Decision

__all__ = ["SCORED_REASONS", "ShadowScore", "ShadowScorer"]

SCORED_REASONS = frozenset({"predicted_overload", "declared_peak", "swap", "current_overload"})


@dataclass(frozen=True, slots=True)
class ShadowScore:
    precision: float | None
    recall: float | None
    true_positives: int
    false_positives: int
    pending: int
    episodes_recalled: int
    false_negatives: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: getattr(self, k) for k in self.__slots__}


class ShadowScorer:
    """Accumulates predictions and actuals; :meth:`score` is cheap enough to call per cycle."""

    def __init__(self, tolerance_seconds: float = 600.0, lookback_seconds: float = 3600.0) -> None:
        if tolerance_seconds < 0 or lookback_seconds < 0:
            raise ValueError("tolerance_seconds and lookback_seconds must not be negative")
        self.tolerance, self.lookback = tolerance_seconds, lookback_seconds
        self._predictions: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self._over: dict[tuple[str, str], list[float]] = {}
        self._episodes: dict[tuple[str, str], list[float]] = {}
        self._was_over: dict[tuple[str, str], bool] = {}

    def record(self, decision: Decision) -> None:
        """Take the overload predictions of a decision (one per source node and resource)."""
        for o in decision.orders:
            r = o.reason
            if r.code in SCORED_REASONS and r.resource is not None:
                self.record_prediction(o.source_node, r.resource, o.issued_at, r.predicted_breach_at or o.issued_at)

    def record_prediction(self, node_id: str, resource: str, issued_at: float, breach_at: float) -> None:
        self._predictions.setdefault((node_id, resource), []).append((issued_at, breach_at))

    def observe(self, node_id: str, resource: str, at: float, ratio: float, threshold: float) -> None:
        """One actual utilisation sample (observe in time order per node and resource)."""
        key = (node_id, resource)
        over = ratio > threshold
        if over:
            self._over.setdefault(key, []).append(at)
            if not self._was_over.get(key, False):
                self._episodes.setdefault(key, []).append(at)
        self._was_over[key] = over

    def score(self, now: float) -> ShadowScore:
        tp = fp = pending = 0
        for key, preds in self._predictions.items():
            over = self._over.get(key, [])
            for issued, breach in preds:
                i = bisect.bisect_left(over, issued)
                if i < len(over) and over[i] <= breach + self.tolerance:
                    tp += 1
                elif now <= breach + self.tolerance:
                    pending += 1
                else:
                    fp += 1
        recalled = missed = 0
        for key, starts in self._episodes.items():
            preds = self._predictions.get(key, [])
            for start in starts:
                hit = any(
                    start - self.lookback <= issued <= start and breach >= start - self.tolerance
                    for issued, breach in preds
                )
                recalled += hit
                missed += not hit
        precision = tp / (tp + fp) if tp + fp else None
        recall = recalled / (recalled + missed) if recalled + missed else None
        return ShadowScore(precision, recall, tp, fp, pending, recalled, missed)
