"""Run the selected policy on the live cluster view, once per pool per decision interval.

Event time drives it: ``now`` is the newest sample time seen, so a replay of the same records
makes the same orders (and the same deterministic order ids) as the live run did.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from streams.decisions import noop, policy, reactive
from streams.decisions.cluster import ClusterView
from streams.decisions.config import PolicyConfig
from streams.decisions.orders import Decision
from streams.decisions.safety import PolicyState
from streams.decisions.shadow import ShadowScore, ShadowScorer
from streams.live.cluster_state import LiveClusterState

PolicyFn = Callable[[ClusterView, float, PolicyConfig, PolicyState], Decision]
POLICIES: dict[str, PolicyFn] = {"predictive": policy.decide, "reactive": reactive.decide, "none": noop.decide}


@dataclass
class DecisionOutput:
    pool: str
    at: float
    orders: list[dict[str, Any]]
    explanations: list[dict[str, Any]]


@dataclass
class DecisionStage:
    state: LiveClusterState
    config: PolicyConfig
    policy_name: str = "predictive"
    _policy_state: dict[str, PolicyState] = field(default_factory=dict)
    _last_run: dict[str, float] = field(default_factory=dict)
    # In recommend and shadow modes nobody acts, so what follows a recommendation is the
    # counterfactual it was about: score it (precision/recall) against the actual utilization.
    shadow: ShadowScorer | None = None

    def __post_init__(self) -> None:
        if self.policy_name not in POLICIES:
            raise ValueError(f"unknown policy {self.policy_name!r}; choose one of {', '.join(POLICIES)}")
        if self.config.mode != "enforce" and self.shadow is None:
            self.shadow = ShadowScorer()

    def shadow_score(self) -> ShadowScore | None:
        return None if self.shadow is None else self.shadow.score(self.state.latest_at)

    def due(self, now: float, pools: Collection[str] | None = None) -> list[str]:
        interval = self.config.decision_interval_seconds
        return [
            p
            for p in self.state.pools()
            if (pools is None or p in pools) and now - self._last_run.get(p, float("-inf")) >= interval
        ]

    def forget(self, pools: Collection[str]) -> None:
        """Drop the pools whose shard moved away: their view and their policy state."""
        self.state.drop_pools(pools)
        for pool in pools:
            self._policy_state.pop(pool, None)
            self._last_run.pop(pool, None)

    def run_due(self, now: float | None = None, pools: Collection[str] | None = None) -> list[DecisionOutput]:
        """Decide for every pool (of ``pools``, default all) whose interval has elapsed at event time ``now``."""
        now = self.state.latest_at if now is None else now
        out = []
        for pool in self.due(now, pools):
            if not self.state.complete(pool):
                continue
            self._last_run[pool] = now
            view = self.state.view(pool, now)
            if not view.nodes:
                continue
            if self.shadow is not None:
                for nid, node in view.nodes.items():
                    for res in self.config.resources:
                        cap = node.capacity.get(res) or 0.0
                        if cap > 0:
                            ratio = view.usage_of_node(nid, res) / cap
                            self.shadow.observe(nid, res, now, ratio, self.config.trigger_ratio)
            decision = POLICIES[self.policy_name](
                view, now, self.config, self._policy_state.setdefault(pool, PolicyState())
            )
            if self.shadow is not None:
                self.shadow.record(decision)
            orders = self._order_records(decision, view)
            for order in orders:
                self.state.on_order(order)
            explanations = [self._explanation_record(e.to_dict(), orders, pool) for e in decision.explanations]
            out.append(DecisionOutput(pool, now, orders, explanations))
        return out

    def _explanation_record(self, rec: dict[str, Any], orders: list[dict[str, Any]], pool: str) -> dict[str, Any]:
        rec.update(pool=pool, mode=self.config.mode, policy=self.policy_name)
        if rec["decision"] == "acted":
            # The orders this explanation accounts for: those moving work off (or onto) its node.
            node = rec["node_id"]
            mine = [o["order_id"] for o in orders if node in (o["source_node"], o["target_node"])]
            rec["order_ids"] = mine or [o["order_id"] for o in orders]
        return rec

    def _order_records(self, decision: Decision, view: ClusterView) -> list[dict[str, Any]]:
        """Orders as topic records, with what executors and dashboards want to know beside them."""
        by_workload = {o.workload_id: o for o in decision.orders}
        records = []
        for o in decision.orders:
            rec = o.to_dict()
            w = view.workloads.get(o.workload_id)
            rec["policy"] = self.policy_name
            rec["expected_seconds"] = round(o.predicted_duration_seconds, 3)
            rec["expected_downtime_seconds"] = round(o.predicted_downtime_seconds, 6)
            if w is not None:
                rec["priority"] = w.priority
                rec["mem_bytes"] = int(w.memory_bytes)
            if o.swap_with is not None:
                other = by_workload.get(o.swap_with)
                if other is None:
                    rec.pop("swap_with")
                else:
                    rec["swap_with"] = {"order_id": other.order_id, "workload_id": other.workload_id}
            records.append(rec)
        return records
