"""Target choice (ARCHITECTURE §6.4): compatible, preferably similar, away from maintenance, and
with room for the incoming workload's upper bound on every resource for the whole horizon."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from streams.decisions.cluster import ClusterView, Node, Workload
from streams.decisions.explain import TargetNote
from streams.decisions.projection import Projection
from streams.decisions.safety import Gate

__all__ = ["TargetFinder", "compatible", "in_maintenance", "similarity"]


def compatible(w: Workload, source: Node, target: Node) -> str | None:
    """Why ``target`` cannot host ``w`` coming from ``source`` (hard constraints), else None."""
    if target.arch != source.arch:
        return f"arch {target.arch} != {source.arch}"
    if target.driver != source.driver:
        return f"driver {target.driver} != {source.driver}"
    if w.kind not in target.kinds:
        return f"kind {w.kind} not hosted"
    for key, value in w.required_labels.items():
        if target.labels.get(key) != value:
            return f"label {key}={value} missing"
    return None


def similarity(a: Node, b: Node) -> float:
    """Share of fingerprint fields (of either node) on which ``a`` and ``b`` agree, in 0..1."""
    keys = set(a.fingerprint) | set(b.fingerprint)
    if not keys:
        return 1.0
    return sum(1 for k in keys if a.fingerprint.get(k) == b.fingerprint.get(k)) / len(keys)


def in_maintenance(view: ClusterView, node: Node, start_at: float, end_at: float) -> bool:
    """Whether a maintenance window touching ``node`` overlaps ``[start_at, end_at)``."""
    return any(
        e.kind == "maintenance" and e.overlaps(start_at, end_at) and e.covers(node, view.hosted_on(node.node_id))
        for e in view.events
    )


@dataclass(frozen=True, slots=True)
class Choice:
    node_id: str
    detail: str


class TargetFinder:
    """Scans a pool's nodes coolest-first (per resource, cached for the cycle)."""

    SIMILARITY_WEIGHT = 0.2  # ratio points a fully dissimilar target must beat a similar one by

    def __init__(
        self, view: ClusterView, now: float, proj: Projection, gate: Gate, latched_blocks: bool = True
    ) -> None:
        self.view, self.now, self.proj, self.gate = view, now, proj, gate
        self.latched_blocks = latched_blocks  # whether a node predicted hot (latched) is no target
        self.config = proj.config
        horizon = max(view.horizons_seconds) if view.horizons_seconds else 0.0
        self.guard_end = now + horizon + self.config.maintenance_guard_seconds
        # Per (pool, resource): the pool's nodes as (peak ratio, id), coolest first, kept current
        # as orders reserve room (see :meth:`moved`): with a stale order, nodes that took work
        # earlier in the cycle would stay first, fill up, and hide the cool ones behind them.
        self._order: dict[tuple[str, str], list[tuple[float, str]]] = {}
        self._entry: dict[tuple[str, str], tuple[float, str]] = {}
        self._maint: dict[str, bool] = {}

    def _ranked(self, pool: str, resource: str) -> list[tuple[float, str]]:
        key = (pool, resource)
        got = self._order.get(key)
        if got is None:
            known = self.proj.assessed
            entries = []
            for n in self.view.pool_nodes(pool):
                peak = known[(n, resource)] if (n, resource) in known else self.proj.peak_ratio(n, resource)
                entries.append((peak, n))
                self._entry[(n, resource)] = (peak, n)
            got = self._order[key] = sorted(entries)
        return got

    def coolest(self, pool: str, resource: str, limit: int | None = None) -> list[str]:
        ranked = self._ranked(pool, resource)
        return [n for _, n in (ranked if limit is None else ranked[:limit])]

    def moved(self, node_ids: Iterable[str]) -> None:
        """Re-rank nodes whose projection changed (an order moved work off or onto them)."""
        for node_id in node_ids:
            node = self.view.nodes.get(node_id)
            if node is None:
                continue
            for res in self.config.resources:
                ranked = self._order.get((node.pool, res))
                old = self._entry.get((node_id, res))
                if ranked is None or old is None:
                    continue
                del ranked[bisect.bisect_left(ranked, old)]
                new = self._entry[(node_id, res)] = (self.proj.peak_ratio(node_id, res), node_id)
                bisect.insort(ranked, new)

    def maintenance(self, node: Node) -> bool:
        got = self._maint.get(node.node_id)
        if got is None:
            got = self._maint[node.node_id] = in_maintenance(self.view, node, self.now, self.guard_end)
        return got

    def static_block(self, w: Workload, source: Node, target: Node, slots: int = 1) -> tuple[str, str] | None:
        """Constraints that do not depend on load: same node, compatibility, maintenance, limits."""
        if target.node_id == source.node_id:
            return "same_node", ""
        why = compatible(w, source, target)
        if why is not None:
            return "incompatible", why
        if self.maintenance(target):
            return "maintenance", "maintenance window in or near the horizon"
        if self.gate.left_recently(w.workload_id, target.node_id):
            return "ping_pong", "left this node within the ping-pong window"
        if not self.gate.node_room(target.node_id, slots):
            return "node_limit", "in-flight orders at the node limit"
        if self.latched_blocks and any((target.node_id, r) in self.gate.state.latched for r in self.config.resources):
            return "hot", "node is itself predicted hot"
        return None

    def find(
        self, w: Workload, source: Node, resource: str, notes: list[TargetNote], slots: int = 1, relaxed: bool = False
    ) -> Choice | None:
        """Best target for ``w``: the lowest peak after the move, penalised by dissimilarity.

        ``relaxed``: the target may go up to its trigger threshold instead of ``target_ratio``
        (the fallback for a node overloaded *now*, when no stricter move exists).
        """
        resources = self.config.resources
        cap_of = self.proj.threshold if relaxed else self.proj.target_limit
        best: tuple[float, str, str] | None = None
        fits = 0
        limit = self.config.explain_limit
        # Adding w raises every horizon by at least its smallest mean, so a node whose peak plus
        # that already exceeds its limit cannot take w; coolest first, neither can the rest.
        least = min(self.proj.workload(w.workload_id, resource)[0], default=0.0)
        scanned = 0
        for _, node_id in self._ranked(source.pool, resource):
            if scanned >= self.config.max_target_scan or fits >= self.config.max_target_fits:
                break
            target = self.view.nodes[node_id]
            cap = self.proj.capacity(node_id, resource)
            if cap <= 0 or self.proj.peak_ratio(node_id, resource) + least / cap > cap_of(target, resource):
                if len(notes) < limit:
                    notes.append(TargetNote(node_id, "would_overload", "this and every warmer node are full"))
                break
            blocked = self.static_block(w, source, target, slots)
            if blocked is not None:
                if blocked[0] != "same_node" and len(notes) < limit:
                    notes.append(TargetNote(node_id, *blocked))
                if blocked[0] not in ("same_node", "node_limit"):
                    scanned += 1  # nodes busy this cycle do not use up the scan budget
                continue
            scanned += 1
            limits = {r: cap_of(target, r) for r in resources}
            after, detail = self.proj.fits(node_id, w.workload_id, resources, limits)
            if after is None:
                if len(notes) < limit:
                    notes.append(TargetNote(node_id, "would_overload", detail))
                continue
            fits += 1
            score = after + self.SIMILARITY_WEIGHT * (1.0 - similarity(source, target))
            if best is None or score < best[0]:
                best = (score, node_id, detail)
        if best is None:
            return None
        notes.append(TargetNote(best[1], None, best[2]))
        return Choice(best[1], best[2])
