"""Projected node load over the horizon and the predicted-bottleneck test (ARCHITECTURE §6.1).

A node's projection is a mean curve and a squared-margin curve (upper = mean + sqrt(margin²)),
taken from its forecast, adjusted for declared peak events not already in the forecast, plus every
workload moving *in* (capacity reserved until the move ends) and minus every workload moving
*out*. Workloads add as independent errors: means add, squared margins add. Curves are absolute;
ratios divide by capacity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streams.decisions.cluster import ClusterView, Node
from streams.decisions.config import PolicyConfig
from streams.decisions.safety import Gate, PolicyState

__all__ = ["Hotspot", "Projection"]


@dataclass(frozen=True, slots=True)
class Hotspot:
    """A node predicted to breach ``threshold_ratio`` for ``resource`` in ``breach_in_seconds``."""

    node_id: str
    resource: str
    breach_in_seconds: float  # 0: over the threshold now
    peak_ratio: float
    threshold_ratio: float
    release_ratio: float
    by_event: bool  # the breach is inside a declared event window that raised the forecast


class Projection:
    """Projected curves of one cycle; :meth:`move` keeps them consistent as orders are admitted."""

    def __init__(self, view: ClusterView, now: float, config: PolicyConfig, gate: Gate) -> None:
        self.view, self.now, self.config = view, now, config
        self.horizons = view.horizons_seconds
        self._moments: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        self._wl: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        self._bumped: dict[tuple[str, str], set[int]] = {}
        self.assessed: dict[tuple[str, str], float] = {}  # peak ratio of each node when assessed
        self._fast = getattr(view.workload_forecasts, "moments", None)
        self._rows = getattr(view.workload_forecasts, "moment_rows", None)
        self._node_fast = getattr(view.node_forecasts, "moments", None)
        self._peak: dict[tuple[str, str], float] = {}
        self._k2 = config.uncertainty_scale**2  # margins are kept squared
        self._peaks = [
            e
            for e in view.events
            if e.kind != "maintenance"
            and not e.in_forecast
            and e.overlaps(now, now + (max(self.horizons) if self.horizons else 0.0) + 1.0)
        ]
        for wid, (src, dst) in gate.in_flight.items():
            if wid in view.workloads:
                self.move(wid, src, dst)

    def threshold(self, node: Node, resource: str) -> float:
        return node.thresholds.get(resource, self.config.trigger_ratio)

    def release(self, node: Node, resource: str) -> float:
        return self.threshold(node, resource) - self.config.hysteresis_ratio

    def target_limit(self, node: Node, resource: str) -> float:
        return min(self.config.target_ratio, self.threshold(node, resource))

    def capacity(self, node_id: str, resource: str) -> float:
        return self.view.nodes[node_id].capacity.get(resource, 0.0)

    def workload(self, workload_id: str, resource: str) -> tuple[list[float], list[float]]:
        """(mean, squared margin) of a workload's forecast (never mutated: shared)."""
        key = (workload_id, resource)
        got = self._wl.get(key)
        if got is None:
            # A replay's array-backed table hands the moments out directly (the same values).
            fast = self._fast(workload_id, resource) if self._fast is not None else None
            if fast is not None and self._k2 == 1.0:
                got = self._wl[key] = fast
                return got
            if fast is not None:
                got = self._wl[key] = (fast[0], [v * self._k2 for v in fast[1]])
                return got
            mean, upper = self.view.workload_curve(workload_id, resource)
            k2 = self._k2
            got = self._wl[key] = (mean, [(u - m) ** 2 * k2 for m, u in zip(mean, upper, strict=True)])
        return got

    def peaks_without(self, node_id: str, resource: str, workload_ids: Sequence[str]) -> list[float]:
        """``peak_after(node_id, resource, minus=(w,))`` for each ``w``, in one vectorised pass."""
        if not workload_ids:
            return []
        cap = self.capacity(node_id, resource)
        mean, var = self.moments(node_id, resource)
        if cap <= 0 or not mean:
            return [0.0] * len(workload_ids)
        rows = self._rows(workload_ids, resource) if self._rows is not None else None
        if rows is None:
            curves = [self.workload(w, resource) for w in workload_ids]
            rows = np.asarray([c[0] for c in curves]), np.asarray([c[1] for c in curves])
        m = np.maximum(np.asarray(mean) - rows[0], 0.0)
        v = np.maximum(np.asarray(var) - (rows[1] if self._k2 == 1.0 else rows[1] * self._k2), 0.0)
        peaks: list[float] = ((m + np.sqrt(v)).max(axis=1) / cap).tolist()
        return peaks

    def moments(self, node_id: str, resource: str) -> tuple[list[float], list[float]]:
        key = (node_id, resource)
        got = self._moments.get(key)
        if got is None:
            fast = self._node_fast(node_id, resource) if self._node_fast is not None else None
            got = self._moments[key] = fast if fast is not None else self.view.node_moments(node_id, resource)
            if self._k2 != 1.0:
                got[1][:] = [v * self._k2 for v in got[1]]
            self._apply_events(node_id, resource, got)
        return got

    def curve(self, node_id: str, resource: str) -> list[float]:
        """Projected upper bound (absolute) on the view's horizons."""
        mean, var = self.moments(node_id, resource)
        return [m + math.sqrt(v) for m, v in zip(mean, var, strict=True)]

    def _apply_events(self, node_id: str, resource: str, mv: tuple[list[float], list[float]]) -> None:
        if not self._peaks:
            return
        node = self.view.nodes[node_id]
        cap = node.capacity.get(resource, 0.0)
        mean, var = mv
        for ev in self._peaks:
            if ev.resource not in (None, resource) or not ev.covers(node, self.view.hosted_on(node_id)):
                continue
            for i, h in enumerate(self.horizons):
                if ev.start_at <= self.now + h < ev.end_at:
                    mean[i] = mean[i] * ev.factor + ev.delta_ratio * cap
                    var[i] *= ev.factor**2
                    self._bumped.setdefault((node_id, resource), set()).add(i)

    def peak_ratio(self, node_id: str, resource: str) -> float:
        key = (node_id, resource)
        got = self._peak.get(key)
        if got is None:  # cached until an order moves work off or onto the node
            got = self._peak[key] = self.peak_after(node_id, resource)
        return got

    def peak_after(self, node_id: str, resource: str, plus: Sequence[str] = (), minus: Sequence[str] = ()) -> float:
        """Predicted peak ratio over the horizon with workloads ``plus`` added and ``minus`` removed."""
        cap = self.capacity(node_id, resource)
        mean, var = self.moments(node_id, resource)
        if cap <= 0 or not mean:
            return 0.0 if not plus else math.inf
        if not plus and not minus:
            return max(m + math.sqrt(v) for m, v in zip(mean, var, strict=True)) / cap
        m, v = list(mean), list(var)
        for sign, group in ((1.0, plus), (-1.0, minus)):
            for wid in group:
                wm, wv = self.workload(wid, resource)
                m = [a + sign * b for a, b in zip(m, wm, strict=True)]
                v = [a + sign * b for a, b in zip(v, wv, strict=True)]
        sqrt = math.sqrt
        return max((mi if mi > 0.0 else 0.0) + sqrt(vi if vi > 0.0 else 0.0) for mi, vi in zip(m, v, strict=True)) / cap

    def move(self, workload_id: str, source: str, target: str) -> None:
        """Account for ``workload_id`` leaving ``source`` and reserving room on ``target``."""
        for res in self.config.resources:
            wm, wv = self.workload(workload_id, res)
            for node_id, sign in ((source, -1.0), (target, 1.0)):
                if node_id not in self.view.nodes:
                    continue
                self._peak.pop((node_id, res), None)
                mean, var = self.moments(node_id, res)
                for i in range(len(mean)):
                    mean[i] = max(0.0, mean[i] + sign * wm[i])
                    var[i] = max(0.0, var[i] + sign * wv[i])

    def assess(self, node_id: str, resource: str, state: PolicyState) -> Hotspot | None:
        """Update persistence and hysteresis for (node, resource); the hotspot if action is due.

        Call once per (node, resource) per cycle: the streak counts consecutive cycles with a
        predicted breach anywhere in the horizon (or a breach now); the latch sets after
        ``persistence`` of them and clears only when the predicted peak is below the release
        threshold. A latched node with a predicted breach is
        a hotspot.
        """
        node = self.view.nodes[node_id]
        cap = node.capacity.get(resource, 0.0)
        if cap <= 0:
            return None
        trig, rel = self.threshold(node, resource), self.release(node, resource)
        curve = self.curve(node_id, resource)
        now_ratio = self.view.usage_of_node(node_id, resource) / cap
        breach: int | None = None
        limit = trig * cap
        for i, v in enumerate(curve):
            if v > limit:
                breach = i
                break
        ttb = 0.0 if now_ratio > trig else (self.horizons[breach] if breach is not None else None)
        peak = max(max(curve) / cap if curve else 0.0, now_ratio)
        key = (node_id, resource)
        self.assessed[key] = peak
        if ttb is None:
            state.streak.pop(key, None)
        else:
            state.streak[key] = state.streak.get(key, 0) + 1
        if key in state.latched:
            if peak < rel:
                state.latched.discard(key)
        elif state.streak.get(key, 0) >= self.config.persistence or (ttb == 0.0 and self.config.overload_fallback):
            # Persistence filters forecast noise; an overload seen now is a fact, not a forecast.
            state.latched.add(key)
        if ttb is None or key not in state.latched:
            return None
        by_event = breach is not None and ttb > 0 and breach in self._bumped.get(key, ())
        return Hotspot(node_id, resource, ttb, peak, trig, rel, by_event)

    def fits(
        self, node_id: str, workload_id: str, resources: Sequence[str], limit_of: dict[str, float]
    ) -> tuple[float | None, str]:
        """Worst peak ratio with the workload added if ``node_id`` stays under ``limit_of[res]`` on
        every resource, else None; and a detail for the explanation."""
        worst = 0.0
        for res in resources:
            peak = self.peak_after(node_id, res, plus=(workload_id,))
            if peak > limit_of[res]:
                return None, f"{res} peak {peak:.2f} > {limit_of[res]:.2f}"
            worst = max(worst, peak)
        return worst, f"peak {worst:.2f}"
