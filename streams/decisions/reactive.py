"""Reactive baseline: a threshold on *current* utilisation, as the Kubernetes descheduler does.

Every cycle, each node whose current utilisation of some resource exceeds the trigger threshold
gives up at most one workload: the lowest priority first (ties: the largest current usage of the
hot resource, then id), to the least loaded compatible node of its pool (current utilisation)
that stays under the threshold with it. No forecasts, no persistence, no cooldown, no ping-pong
guard; only one in-flight order per workload and the concurrency limits.
"""

from __future__ import annotations

import bisect

from streams.decisions.cluster import ClusterView, Node, Workload
from streams.decisions.config import PolicyConfig
from streams.decisions.explain import CandidateNote, Explanation
from streams.decisions.migration_model import method_for
from streams.decisions.orders import Decision, Reason
from streams.decisions.policy import build_order
from streams.decisions.safety import Gate, PolicyState, reconcile
from streams.decisions.targets import compatible, in_maintenance

__all__ = ["decide"]


def decide(view: ClusterView, now: float, config: PolicyConfig, state: PolicyState) -> Decision:
    """One cycle of the reactive baseline; ``state`` keeps only its open orders."""
    decision = Decision(expired=reconcile(state, view, now, config))
    gate = Gate(state, view, now, config)
    load = {(n, r): view.usage_of_node(n, r) for n in view.nodes for r in config.resources}
    ranks = _Ranks(view, load)
    for node_id in sorted(view.nodes):
        node = view.nodes[node_id]
        util = {r: _ratio(load[(node_id, r)], node, r) for r in config.resources}
        res = max(util, key=lambda r: (util[r], r))
        threshold = node.thresholds.get(res, config.trigger_ratio)
        if util[res] <= threshold:
            continue
        notes: list[CandidateNote] = []
        cands = [view.workloads[w] for w in view.hosted_on(node_id)]
        cands.sort(key=lambda w: (w.priority, -view.workload_usage.get((w.workload_id, res), 0.0), w.workload_id))
        acted = False
        issued = len(decision.orders)
        for w in cands:
            blocked = gate.workload_block(w, ignore_cooldown=True)
            if blocked is not None:
                notes.append(CandidateNote(w.workload_id, *blocked))
                continue
            target = _least_loaded(view, now, config, gate, load, w, node, res, ranks)
            if target is None:
                notes.append(CandidateNote(w.workload_id, "no_target", "no compatible node with room now"))
                continue
            est = config.migration.estimate(method_for(w.kind, node.driver), w.memory_bytes)
            reason = Reason(
                "current_overload",
                res,
                now,
                util[res],
                threshold,
                0.0,
                f"{res} on {node_id} at {util[res]:.2f} > {threshold:.2f}",
                current_ratio=util[res],
            )
            order = build_order(w, node, target, reason, est, now, config, policy="reactive")
            gate.admit(order)
            decision.orders.append(order)
            for r in config.resources:
                use = view.workload_usage.get((w.workload_id, r), 0.0)
                for n, delta in ((target, use), (node_id, -use)):
                    ranks.drop(n, r)
                    load[(n, r)] += delta
                    ranks.put(n, r)
            notes.append(CandidateNote(w.workload_id, None, f"to {target}"))
            acted = True
            break
        decision.explanations.append(
            Explanation(
                node_id,
                now,
                "acted" if acted else "no_action",
                "current_overload" if acted else "no_feasible_move",
                res,
                tuple(notes[-config.explain_limit :] if acted else notes[: config.explain_limit]),
                pool=node.pool,
                policy="reactive",
                mode=config.mode,
                predicted_peak_ratio=util[res],
                threshold_ratio=threshold,
                order_ids=tuple(o.order_id for o in decision.orders[issued:]),
            )
        )
    return decision


def _ratio(load: float, node: Node, res: str) -> float:
    cap = node.capacity.get(res, 0.0)
    return load / cap if cap > 0 else 0.0


def _least_loaded(
    view: ClusterView,
    now: float,
    config: PolicyConfig,
    gate: Gate,
    load: dict[tuple[str, str], float],
    w: Workload,
    source: Node,
    res: str,
    ranks: _Ranks,
) -> str | None:
    """The least loaded node (ties: lowest id) of the pool that may take ``w`` and stays under."""
    # Scanned in (utilisation, id) order, the first node passing every check is the answer.
    use = view.workload_usage.get((w.workload_id, res), 0.0)
    uniform = ranks.uniform(source.pool, res)
    for _, node_id in ranks.of(source.pool, res):
        node = view.nodes[node_id]
        if uniform is not None and (load[(node_id, res)] + use) / uniform > config.trigger_ratio:
            # Equal capacities and thresholds: every node from here on is as full or fuller.
            return None
        if node_id == source.node_id or compatible(w, source, node) is not None:
            continue
        if not gate.node_room(node_id) or gate.limits_block(source.node_id, node_id, source.pool):
            continue
        if in_maintenance(view, node, now, now + config.decision_interval_seconds):
            continue
        fits = all(
            _ratio(load[(node_id, r)] + view.workload_usage.get((w.workload_id, r), 0.0), node, r)
            <= node.thresholds.get(r, config.trigger_ratio)
            for r in config.resources
        )
        if fits:
            return node_id
    return None


class _Ranks:
    """Per (pool, resource), the pool's nodes sorted by current utilisation, kept up to date as
    orders move load: a hot node's target search stops at the first node that fits instead of
    scanning the whole pool (thousands of nodes in a replay)."""

    def __init__(self, view: ClusterView, load: dict[tuple[str, str], float]) -> None:
        self.view, self.load = view, load
        self._sorted: dict[tuple[str, str], list[tuple[float, str]]] = {}
        self._entry: dict[tuple[str, str], tuple[float, str]] = {}
        self._uniform: dict[tuple[str, str], float | None] = {}

    def of(self, pool: str, res: str) -> list[tuple[float, str]]:
        key = (pool, res)
        got = self._sorted.get(key)
        if got is None:
            entries = []
            for n in self.view.pool_nodes(pool):
                e = self._entry[(n, res)] = (_ratio(self.load[(n, res)], self.view.nodes[n], res), n)
                entries.append(e)
            got = self._sorted[key] = sorted(entries)
        return got

    def uniform(self, pool: str, res: str) -> float | None:
        """The capacity of every node of the pool if they are all equal with no threshold of
        their own for ``res`` (then fit is monotone in utilisation), else None."""
        key = (pool, res)
        if key not in self._uniform:
            nodes = [self.view.nodes[n] for n in self.view.pool_nodes(pool)]
            caps = {n.capacity.get(res, 0.0) for n in nodes}
            same = len(caps) == 1 and not any(res in n.thresholds for n in nodes)
            cap = next(iter(caps)) if same else 0.0
            self._uniform[key] = cap if cap > 0 else None
        return self._uniform[key]

    def drop(self, node_id: str, res: str) -> None:
        e = self._entry.pop((node_id, res), None)
        if e is not None:
            ranked = self._sorted[(self.view.nodes[node_id].pool, res)]
            del ranked[bisect.bisect_left(ranked, e)]

    def put(self, node_id: str, res: str) -> None:
        key = (self.view.nodes[node_id].pool, res)
        if key in self._sorted and node_id in self.view.nodes:
            util = _ratio(self.load[(node_id, res)], self.view.nodes[node_id], res)
            e = self._entry[(node_id, res)] = (util, node_id)
            bisect.insort(self._sorted[key], e)
