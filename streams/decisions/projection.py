"""Projected node load over the horizon and the predicted-bottleneck test (ARCHITECTURE §6.1).

A node's projected upper curve is its forecast upper bound, adjusted for declared peak events not
already in the forecast, plus the upper curve of every workload moving *in* (capacity reserved
until the move ends), minus the mean curve of every workload moving *out*. Curves are absolute;
ratios divide by capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        self._curves: dict[tuple[str, str], list[float]] = {}
        self._bumped: dict[tuple[str, str], set[int]] = {}
        self._peaks = [
            e for e in view.events
            if e.kind != "maintenance" and not e.in_forecast
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
        return min(self.config.target_ratio, self.release(node, resource))

    def capacity(self, node_id: str, resource: str) -> float:
        return self.view.nodes[node_id].capacity.get(resource, 0.0)

    def curve(self, node_id: str, resource: str) -> list[float]:
        key = (node_id, resource)
        got = self._curves.get(key)
        if got is None:
            got = self.view.node_curve(node_id, resource)
            self._apply_events(node_id, resource, got)
            self._curves[key] = got
        return got

    def _apply_events(self, node_id: str, resource: str, curve: list[float]) -> None:
        if not self._peaks:
            return
        node = self.view.nodes[node_id]
        cap = node.capacity.get(resource, 0.0)
        for ev in self._peaks:
            if ev.resource not in (None, resource) or not ev.covers(node, self.view.hosted_on(node_id)):
                continue
            for i, h in enumerate(self.horizons):
                if ev.start_at <= self.now + h < ev.end_at:
                    curve[i] = curve[i] * ev.factor + ev.delta_ratio * cap
                    self._bumped.setdefault((node_id, resource), set()).add(i)

    def peak_ratio(self, node_id: str, resource: str) -> float:
        cap = self.capacity(node_id, resource)
        curve = self.curve(node_id, resource)
        return max(curve) / cap if cap > 0 and curve else 0.0

    def move(self, workload_id: str, source: str, target: str) -> None:
        """Account for ``workload_id`` leaving ``source`` (mean) and reserving ``target`` (upper)."""
        for res in self.config.resources:
            mean, upper = self.view.workload_curve(workload_id, res)
            if source in self.view.nodes:
                src = self.curve(source, res)
                for i in range(len(src)):
                    src[i] = max(0.0, src[i] - mean[i])
            if target in self.view.nodes:
                dst = self.curve(target, res)
                for i in range(len(dst)):
                    dst[i] += upper[i]

    def assess(self, node_id: str, resource: str, state: PolicyState) -> Hotspot | None:
        """Update persistence and hysteresis for (node, resource); the hotspot if action is due.

        Call once per (node, resource) per cycle: the streak counts consecutive cycles with a
        predicted breach anywhere in the horizon (or a breach now); the latch sets after
        ``persistence`` of them and clears only when the predicted peak is below the release
        threshold. A latched node with a predicted breach is a hotspot.
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
        if ttb is None:
            state.streak.pop(key, None)
        else:
            state.streak[key] = state.streak.get(key, 0) + 1
        if key in state.latched:
            if peak < rel:
                state.latched.discard(key)
        elif state.streak.get(key, 0) >= self.config.persistence:
            state.latched.add(key)
        if ttb is None or key not in state.latched:
            return None
        by_event = breach is not None and ttb > 0 and breach in self._bumped.get(key, ())
        return Hotspot(node_id, resource, ttb, peak, trig, rel, by_event)

    def fits(self, node_id: str, incoming: dict[str, list[float]], limit_of: dict[str, float]) -> tuple[bool, str]:
        """Whether ``node_id`` stays under ``limit_of[res]`` on every resource with ``incoming`` added."""
        worst = ""
        for res, add in incoming.items():
            cap = self.capacity(node_id, res)
            if cap <= 0:
                return False, f"no {res} capacity"
            curve = self.curve(node_id, res)
            peak = max(c + a for c, a in zip(curve, add, strict=False)) / cap if curve else 0.0
            if peak > limit_of[res]:
                return False, f"{res} peak {peak:.2f} > {limit_of[res]:.2f}"
            worst = f"{res} peak {peak:.2f}" if not worst else worst
        return True, worst
