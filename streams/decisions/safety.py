"""Policy memory and the safety rules that bound disruption (ARCHITECTURE §6.5).

:class:`PolicyState` is everything a policy remembers between cycles (persistence counters,
hysteresis latches, its open orders, move history, back-off strikes, issue log). It is plain data
so the live processor can keep it in a table and a replay can start it empty.

:class:`Gate` is built once per cycle from the state and the view and answers "may this workload
move?", "may it go there?" and "is there room under the limits and budgets?"; :meth:`Gate.admit`
books an order so later checks in the same cycle see it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from streams.decisions.cluster import ClusterView, Workload
from streams.decisions.config import PolicyConfig, SafetyConfig
from streams.decisions.orders import Order

__all__ = ["FAILED_STATUSES", "Gate", "PolicyState", "reconcile"]

FAILED_STATUSES = frozenset({"failed", "rolled_back", "rejected", "expired"})


@dataclass(slots=True)
class PolicyState:
    """What a policy remembers between decision cycles."""

    streak: dict[tuple[str, str], int] = field(default_factory=dict)
    latched: set[tuple[str, str]] = field(default_factory=set)
    open_orders: dict[str, Order] = field(default_factory=dict)  # by workload_id (enforce mode)
    history: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)  # (at, from, to)
    strikes: dict[str, list[float]] = field(default_factory=dict)  # moves and failures, for back-off
    cooldown_until: dict[str, float] = field(default_factory=dict)
    issued: deque[tuple[float, str, str]] = field(default_factory=deque)  # (at, pool, tier)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe snapshot (no pickle), e.g. for a processor's changelog-backed table."""
        return {
            "streak": [[n, r, c] for (n, r), c in sorted(self.streak.items())],
            "latched": sorted([n, r] for n, r in self.latched),
            "open_orders": [o.to_state() for _, o in sorted(self.open_orders.items())],
            "history": {w: [list(m) for m in moves] for w, moves in sorted(self.history.items())},
            "strikes": dict(sorted(self.strikes.items())),
            "cooldown_until": dict(sorted(self.cooldown_until.items())),
            "issued": [list(i) for i in self.issued],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyState:
        orders = [Order.from_state(o) for o in data.get("open_orders", [])]
        return cls(
            streak={(n, r): int(c) for n, r, c in data.get("streak", [])},
            latched={(n, r) for n, r in data.get("latched", [])},
            open_orders={o.workload_id: o for o in orders},
            history={w: [(float(a), s, t) for a, s, t in m] for w, m in data.get("history", {}).items()},
            strikes={w: [float(t) for t in ts] for w, ts in data.get("strikes", {}).items()},
            cooldown_until={w: float(t) for w, t in data.get("cooldown_until", {}).items()},
            issued=deque((float(a), p, t) for a, p, t in data.get("issued", [])),
        )


def _strike(state: PolicyState, cfg: SafetyConfig, workload_id: str, now: float) -> None:
    recent = [t for t in state.strikes.get(workload_id, []) if now - t < cfg.backoff_window_seconds]
    recent.append(now)
    state.strikes[workload_id] = recent
    pause = cfg.cooldown_seconds * cfg.backoff_factor ** (len(recent) - 1)
    state.cooldown_until[workload_id] = now + min(pause, cfg.max_cooldown_seconds)


def reconcile(state: PolicyState, view: ClusterView, now: float, config: PolicyConfig) -> list[str]:
    """Close this policy's open orders that completed, failed or went stale; return expired ids.

    A move counts as completed when the view places the workload on the target (or the migrations
    topic says ``completed``); completion starts the cooldown, a failure or expiry adds a strike
    (exponential back-off) without moving the workload.
    """
    cfg = config.safety
    expired: list[str] = []
    for wid, order in list(state.open_orders.items()):
        w = view.workloads.get(wid)
        status = view.finished.get(order.order_id)
        if w is None:
            del state.open_orders[wid]
        elif w.node_id == order.target_node or status == "completed":
            state.history.setdefault(wid, []).append((now, order.source_node, order.target_node))
            _strike(state, cfg, wid, now)
            del state.open_orders[wid]
        elif status in FAILED_STATUSES or now > order.deadline_at:
            if status is None:
                expired.append(order.order_id)
            _strike(state, cfg, wid, now)
            del state.open_orders[wid]
    horizon = max(cfg.rate_window_seconds, cfg.budget_window_seconds)
    while state.issued and now - state.issued[0][0] >= horizon:
        state.issued.popleft()
    for wid in [w for w, until in state.cooldown_until.items() if until <= now]:
        del state.cooldown_until[wid]
    return expired


class Gate:
    """Safety checks of one cycle; counts include orders admitted earlier in the cycle."""

    def __init__(self, state: PolicyState, view: ClusterView, now: float, config: PolicyConfig) -> None:
        self.state, self.view, self.now, self.config = state, view, now, config
        self.cfg = config.safety
        # workload -> (source, target); external in-flight orders count like ours.
        self.in_flight: dict[str, tuple[str, str]] = {
            w: (f.source_node, f.target_node) for w, f in view.in_flight.items()
        }
        for w, o in state.open_orders.items():
            self.in_flight[w] = (o.source_node, o.target_node)
        self.per_node: dict[str, int] = {}
        self.per_pool: dict[str, int] = {}
        for src, dst in self.in_flight.values():
            for n in {src, dst}:
                self.per_node[n] = self.per_node.get(n, 0) + 1
            pool = view.nodes[src].pool if src in view.nodes else ""
            self.per_pool[pool] = self.per_pool.get(pool, 0) + 1
        self.rate = sum(1 for at, _, _ in state.issued if now - at < self.cfg.rate_window_seconds)
        self.tiers: dict[str, int] = {}
        for at, _, tier in state.issued:
            if now - at < self.cfg.budget_window_seconds:
                self.tiers[tier] = self.tiers.get(tier, 0) + 1

    def workload_block(self, w: Workload, *, ignore_cooldown: bool = False) -> tuple[str, str] | None:
        """(exclusion code, detail) if ``w`` may not move now, else None."""
        if not w.migratable:
            return "not_migratable", ""
        if w.pinned:
            return "pinned", ""
        if w.workload_id in self.in_flight:
            return "in_flight", "one in-flight order per workload"
        until = self.state.cooldown_until.get(w.workload_id, 0.0)
        if not ignore_cooldown and until > self.now:
            return "cooldown", f"until {until:.0f}"
        if not self.tier_room(w.sla_tier):
            return "tier_budget", f"tier {w.sla_tier} budget spent"
        return None

    def tier_room(self, tier: str, n: int = 1) -> bool:
        budget = self.cfg.tier_budget(tier)
        return budget is None or self.tiers.get(tier, 0) + n <= budget

    def left_recently(self, workload_id: str, node_id: str) -> bool:
        """True if moving ``workload_id`` to ``node_id`` would close an A->B->A loop."""
        for at, src, _ in reversed(self.state.history.get(workload_id, ())):
            if self.now - at >= self.cfg.ping_pong_window_seconds:
                break
            if src == node_id:
                return True
        return False

    def node_room(self, node_id: str, n: int = 1) -> bool:
        return self.per_node.get(node_id, 0) + n <= self.cfg.max_per_node

    def limits_block(self, source: str, target: str, pool: str, n: int = 1) -> str | None:
        """Which limit ``n`` more orders between ``source`` and ``target`` would break, if any."""
        if not self.node_room(source, n) or not self.node_room(target, n):
            return "node_limit"
        if self.per_pool.get(pool, 0) + n > self.cfg.max_per_pool:
            return "pool_limit"
        if self.rate + n > self.cfg.max_global_rate:
            return "global_rate"
        return None

    def pool_block(self, pool: str) -> str | None:
        """Whether one more order in ``pool`` would break the pool or global limit."""
        if self.per_pool.get(pool, 0) + 1 > self.cfg.max_per_pool:
            return "pool_limit"
        if self.rate + 1 > self.cfg.max_global_rate:
            return "global_rate"
        return None

    def admit(self, order: Order) -> None:
        """Book ``order``: limits, budgets, cooldown, and (enforce mode) the open-order table."""
        for n in {order.source_node, order.target_node}:
            self.per_node[n] = self.per_node.get(n, 0) + 1
        self.per_pool[order.pool] = self.per_pool.get(order.pool, 0) + 1
        self.rate += 1
        self.tiers[order.sla_tier] = self.tiers.get(order.sla_tier, 0) + 1
        self.in_flight[order.workload_id] = (order.source_node, order.target_node)
        self.state.issued.append((self.now, order.pool, order.sla_tier))
        if order.dry_run:
            # Nobody acts on a recommendation: do not repeat it every cycle, reserve nothing.
            until = self.now + self.cfg.cooldown_seconds
            self.state.cooldown_until[order.workload_id] = until
        else:
            self.state.open_orders[order.workload_id] = order
