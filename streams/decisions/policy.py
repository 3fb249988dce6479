"""The predictive migration policy (ARCHITECTURE §6): pure, deterministic, time as an input.

``decide(view, now, config, state)`` runs one decision cycle:

1. close finished or stale orders (:func:`safety.reconcile`);
2. evacuate nodes whose maintenance window starts within the evacuation lead time;
3. for every node and resource, update persistence/hysteresis on the projected upper bound;
   for each hotspot whose time-to-breach is within the lead time (predicted migration duration
   + margin + one decision interval: waiting one more cycle would be too late), move the
   lowest-priority workload whose move resolves the breach at least cost to the best target,
   else a partial move, else a two-way swap, else explain why nothing can be done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from streams.decisions.cluster import ClusterView, Node, Workload
from streams.decisions.config import PolicyConfig
from streams.decisions.explain import CandidateNote, Explanation, TargetNote
from streams.decisions.migration_model import MigrationEstimate, method_for
from streams.decisions.order_id import make_order_id
from streams.decisions.orders import Decision, Order, Reason
from streams.decisions.projection import Hotspot, Projection
from streams.decisions.safety import Gate, PolicyState, reconcile
from streams.decisions.targets import TargetFinder, compatible

__all__ = ["build_order", "decide"]


def build_order(
    w: Workload,
    source: Node,
    target: str,
    reason: Reason,
    est: MigrationEstimate,
    now: float,
    config: PolicyConfig,
    swap_with: str | None = None,
    swap_with_workload: str | None = None,
    policy: str = "predictive",
) -> Order:
    """The order moving ``w`` from ``source`` to ``target``: deterministic id, deadline, mode."""
    interval = config.decision_interval_seconds
    return Order(
        order_id=make_order_id(w.workload_id, source.node_id, target, reason.code, now, interval),
        workload_id=w.workload_id,
        kind=w.kind,
        source_node=source.node_id,
        target_node=target,
        method=method_for(w.kind, source.driver),
        reason=reason,
        issued_at=now,
        deadline_at=now + est.duration_seconds * config.deadline_factor + config.deadline_slack_seconds,
        dry_run=config.dry_run,
        mode=config.mode,
        pool=source.pool,
        sla_tier=w.sla_tier,
        swap_with=swap_with,
        swap_with_workload=swap_with_workload,
        predicted_duration_seconds=est.duration_seconds,
        predicted_downtime_seconds=est.downtime_seconds,
        policy=policy,
        priority=w.priority,
        memory_bytes=w.memory_bytes,
    )


def decide(view: ClusterView, now: float, config: PolicyConfig, state: PolicyState) -> Decision:
    """One cycle of the predictive policy; ``state`` is updated in place."""
    return _Cycle(view, now, config, state).run()


@dataclass(frozen=True, slots=True)
class _Candidate:
    priority: int
    cost: float
    workload: Workload
    estimate: MigrationEstimate
    after_ratio: float  # hot resource's predicted peak on the source without this workload


class _Cycle:
    SWAP_CHECKS = 24  # (x, y) pairs examined per hotspot at most
    CANDIDATES_TRIED = 4  # candidates per pass whose targets are searched at most
    SWAP_SEARCHES = 8  # failed swap searches per cycle before swaps are no longer tried

    def __init__(self, view: ClusterView, now: float, config: PolicyConfig, state: PolicyState) -> None:
        self.view, self.now, self.config, self.state = view, now, config, state
        self.decision = Decision(expired=reconcile(state, view, now, config))
        self.gate = Gate(state, view, now, config)
        self.proj = Projection(view, now, config, self.gate)
        self.finder = TargetFinder(view, now, self.proj, self.gate)
        self.evacuating: set[str] = set()
        self.swaps_failed = 0
        self._estimates: dict[tuple[str, float], MigrationEstimate] = {}
        self._sizes: dict[tuple[str, str], list[tuple[float, str]]] = {}
        self._fb: tuple[Projection, TargetFinder] | None = None  # the best-estimate pass's, lazily
        self._explained_orders = 0

    def run(self) -> Decision:
        self._evacuate()
        hotspots = []
        for node_id in sorted(self.view.nodes):
            for res in self.config.resources:
                hs = self.proj.assess(node_id, res, self.state)
                if hs is not None and node_id not in self.evacuating:
                    hotspots.append(hs)
        hotspots.sort(key=lambda h: (h.breach_in_seconds, -h.peak_ratio, h.node_id, h.resource))
        for hs in hotspots:
            self._relieve(hs)
        return self.decision

    # --- maintenance (§6.6) ------------------------------------------------------------------
    def _evacuate(self) -> None:
        cfg = self.config
        for ev in sorted(self.view.events, key=lambda e: (e.start_at, e.event_id)):
            if ev.kind != "maintenance" or ev.cancelled or ev.end_at <= self.now:
                continue
            for node_id in sorted(self.view.nodes):
                node = self.view.nodes[node_id]
                hosted = self.view.hosted_on(node_id)
                if node_id in self.evacuating or not ev.covers(node, hosted):
                    continue
                moving = [self.view.workloads[w] for w in hosted if self._movable(w)]
                if not moving:
                    continue
                ests = {w.workload_id: self._estimate(w, node) for w in moving}
                rounds = math.ceil(len(moving) / cfg.safety.max_per_node)
                # At most max_per_node leave per cycle, and a cycle lasts at least one interval.
                longest = max(e.duration_seconds for e in ests.values())
                lead = rounds * max(longest, cfg.decision_interval_seconds)
                lead += cfg.margin_seconds + cfg.decision_interval_seconds + cfg.evacuation_margin_seconds
                if ev.start_at - self.now > lead:
                    continue
                self.evacuating.add(node_id)
                reason = Reason(
                    "maintenance_evacuation",
                    None,
                    ev.start_at,
                    None,
                    None,
                    lead,
                    f"maintenance {ev.event_id} starts at {ev.start_at:.0f}",
                    event_id=ev.event_id,
                )
                stuck = [
                    self.view.workloads[w] for w in hosted if not self._movable(w) and w not in self.gate.in_flight
                ]
                self._evacuate_node(node, moving, ests, reason, stuck)

    def _movable(self, wid: str) -> bool:
        w = self.view.workloads[wid]
        return w.migratable and not w.pinned and wid not in self.gate.in_flight

    def _evacuate_node(
        self,
        node: Node,
        moving: list[Workload],
        ests: dict[str, MigrationEstimate],
        reason: Reason,
        stuck: list[Workload],
    ) -> None:
        cands = [CandidateNote(w.workload_id, *(self.gate.workload_block(w) or ("not_migratable", ""))) for w in stuck]
        targets: list[TargetNote] = []
        acted = False
        # Most critical first: they are the ones that must not be caught by the window.
        for w in sorted(moving, key=lambda w: (-w.priority, ests[w.workload_id].duration_seconds, w.workload_id)):
            blocked = self.gate.workload_block(w, ignore_cooldown=True)
            if blocked is None and not self.gate.node_room(node.node_id):
                blocked = ("node_limit", "source at its in-flight limit; continues next cycle")
            if blocked is not None:
                cands.append(CandidateNote(w.workload_id, *blocked))
                continue
            choice = self.finder.find(w, node, self.config.resources[0], targets)
            limit = choice and self.gate.limits_block(node.node_id, choice.node_id, node.pool)
            if choice is None or limit:
                cands.append(CandidateNote(w.workload_id, "no_target", limit or "no compatible node with room"))
                continue
            self._issue(w, node, choice.node_id, reason, ests[w.workload_id])
            cands.append(CandidateNote(w.workload_id, None, f"to {choice.node_id}"))
            acted = True
        breach = reason.predicted_breach_at
        self._explain(node.node_id, acted, reason.code, None, cands, targets, reason.message, breach_at=breach)

    # --- predicted bottlenecks (§6.1-6.4) ----------------------------------------------------
    def _relieve(self, hs: Hotspot) -> None:
        node = self.view.nodes[hs.node_id]
        code = "declared_peak" if hs.by_event else "predicted_overload"
        full = self.gate.pool_block(node.pool) or (None if self.gate.node_room(node.node_id) else "node_limit")
        if full is not None:  # cheap: no search when no order could be admitted anyway
            self._explain(node.node_id, False, full, hs.resource, [], [], "limit reached this cycle", hs=hs)
            return
        cap = node.capacity.get(hs.resource, 0.0)
        now_ratio = self.view.usage_of_node(node.node_id, hs.resource) / cap if cap > 0 else 0.0
        if hs.breach_in_seconds > 0 and now_ratio < self.config.act_floor_ratio:
            # A breach predicted from a low load is mostly the forecast's spread on a volatile
            # node: moving now costs a migration that is seldom needed (seen on spiky traces).
            msg = f"{hs.resource} at {now_ratio:.2f} now, below {self.config.act_floor_ratio:.2f}"
            self._explain(node.node_id, False, "below_act_floor", hs.resource, [], [], msg, hs=hs)
            return
        movable, notes = self._movable_here(node)
        targets: list[TargetNote] = []
        if not movable:
            self._explain(node.node_id, False, "no_candidate", hs.resource, notes, targets, hs=hs)
            return
        lead = min(est.duration_seconds for _, est in movable) + self.config.margin_seconds
        if hs.breach_in_seconds > lead + self.config.decision_interval_seconds:
            msg = f"breach in {hs.breach_in_seconds:.0f}s, acting within {lead:.0f}s of it"
            self._explain(node.node_id, False, "lead_time", hs.resource, notes, targets, msg, hs=hs)
            return
        cands = self._candidates(node, hs, movable)
        excess = hs.peak_ratio - hs.release_ratio
        passes = [[c for c in cands if c.after_ratio <= hs.release_ratio]]
        if self.config.allow_partial:
            floor = self.config.min_relief_fraction * excess
            passes.append([c for c in cands if hs.release_ratio < c.after_ratio <= hs.peak_ratio - floor])
        seen = {c.workload.workload_id for p in passes for c in p}
        for c in cands:
            if c.workload.workload_id not in seen:
                notes.append(
                    CandidateNote(c.workload.workload_id, "does_not_resolve", f"peak after {c.after_ratio:.2f}")
                )
        if self._first_move(node, hs, passes, code, notes, targets, relaxed=False):
            return
        if self.config.allow_swap and self.swaps_failed < self.SWAP_SEARCHES and self._swap(node, hs, cands, code):
            self._explain(node.node_id, True, "swap", hs.resource, notes, targets, hs=hs)
            return
        fallback = self.config.overload_fallback and hs.breach_in_seconds == 0.0
        if fallback and self.config.fallback_uncertainty_scale is not None:
            if self._best_estimate_move(node, hs, cands, code, notes, targets):
                return
        elif fallback and self._first_move(node, hs, passes, code, notes, targets, relaxed=True):
            return
        self._explain(node.node_id, False, "no_feasible_move", hs.resource, notes, targets, hs=hs)

    def _best_estimate_move(
        self,
        node: Node,
        hs: Hotspot,
        cands: list[_Candidate],
        code: str,
        notes: list[CandidateNote],
        targets: list[TargetNote],
    ) -> bool:
        """Overloaded now and no move is safe on the upper bounds: judge on narrower margins.

        When the forecasts are too uncertain for any move to provably resolve the overload, a node
        that is over its threshold *now* would otherwise be left alone. This pass re-ranks the
        candidates and checks targets with the margins scaled by ``fallback_uncertainty_scale``
        (0: the mean forecast): first a move that resolves the overload, else the one with the
        most relief, to a target that stays under ``target_ratio`` for the whole horizon.
        """
        proj, finder = self._fallback()
        wids = [c.workload.workload_id for c in cands]
        afters = proj.peaks_without(node.node_id, hs.resource, wids)
        before = proj.peak_ratio(node.node_id, hs.resource)
        rel = hs.release_ratio
        # Relief worth a migration: a share of the excess as the narrower margins see it.
        floor = before - self.config.fallback_min_relief_fraction * max(before - rel, 0.0)
        ranked = sorted(
            ((a, c) for a, c in zip(afters, cands, strict=True) if a < before and a <= floor),
            key=lambda ac: (
                ac[0] > rel,  # resolving moves first
                ac[1].priority,
                ac[0] if ac[0] > rel else ac[1].cost,  # then most relief, or least cost when resolved
                ac[1].workload.workload_id,
            ),
        )
        for _, c in ranked[: self.CANDIDATES_TRIED]:
            choice = finder.find(c.workload, node, hs.resource, targets)
            limit = choice and self.gate.limits_block(node.node_id, choice.node_id, node.pool)
            if choice is None or limit:
                notes.append(CandidateNote(c.workload.workload_id, "no_target", limit or "best-estimate pass"))
                continue
            reason = self._reason(code, hs, c.estimate)
            self._issue(c.workload, node, choice.node_id, reason, c.estimate)
            notes.append(CandidateNote(c.workload.workload_id, None, f"to {choice.node_id} (best estimate)"))
            self._explain(node.node_id, True, code, hs.resource, notes, targets, hs=hs)
            return True
        return False

    def _fallback(self) -> tuple[Projection, TargetFinder]:
        if self._fb is None:
            scale = self.config.fallback_uncertainty_scale or 0.0
            proj = Projection(self.view, self.now, replace(self.config, uncertainty_scale=scale), self.gate)
            # The latch is set on the upper bounds this pass looks past: a latched target is
            # judged, like every other, on whether the narrower projection with the workload
            # stays under target_ratio. Blocking it left a saturated fleet's overloaded nodes
            # without any target (bitbrains, 1,000 nodes: overload 1.38x reactive -> 0.56x).
            finder = TargetFinder(self.view, self.now, proj, self.gate, latched_blocks=False)
            self._fb = proj, finder
        return self._fb

    def _first_move(
        self,
        node: Node,
        hs: Hotspot,
        passes: list[list[_Candidate]],
        code: str,
        notes: list[CandidateNote],
        targets: list[TargetNote],
        relaxed: bool,
    ) -> bool:
        """Issue the first candidate of ``passes`` that has a target; False if none has."""
        for group in passes:
            for c in group[: self.CANDIDATES_TRIED]:
                choice = self.finder.find(c.workload, node, hs.resource, targets, relaxed=relaxed)
                limit = choice and self.gate.limits_block(node.node_id, choice.node_id, node.pool)
                if choice is None or limit:
                    notes.append(CandidateNote(c.workload.workload_id, "no_target", limit or ""))
                    continue
                reason = self._reason(code, hs, c.estimate)
                self._issue(c.workload, node, choice.node_id, reason, c.estimate)
                notes.append(CandidateNote(c.workload.workload_id, None, f"to {choice.node_id}"))
                self._explain(node.node_id, True, code, hs.resource, notes, targets, hs=hs)
                return True
        return False

    def _movable_here(self, node: Node) -> tuple[list[tuple[Workload, MigrationEstimate]], list[CandidateNote]]:
        """Workloads on ``node`` that may move now (with their estimates), and notes on the others."""
        notes: list[CandidateNote] = []
        movable: list[tuple[Workload, MigrationEstimate]] = []
        for wid in self.view.hosted_on(node.node_id):
            w = self.view.workloads[wid]
            blocked = self.gate.workload_block(w)
            if blocked is not None:
                if len(notes) < self.config.explain_limit:
                    notes.append(CandidateNote(wid, *blocked))
                continue
            est = self._estimate(w, node)
            if w.max_downtime_seconds is not None and est.downtime_seconds > w.max_downtime_seconds:
                notes.append(
                    CandidateNote(wid, "sla_downtime", f"{est.downtime_seconds:.2f}s > {w.max_downtime_seconds}s")
                )
                continue
            movable.append((w, est))
        return movable, notes

    def _candidates(
        self, node: Node, hs: Hotspot, movable: list[tuple[Workload, MigrationEstimate]]
    ) -> list[_Candidate]:
        """The movable workloads ranked: lowest priority, then lowest cost (ARCHITECTURE §6.3)."""
        cap = node.capacity[hs.resource]
        now_load = self.view.usage_of_node(node.node_id, hs.resource)
        # The hot node's predicted peak without each candidate, all at once (the hot path of a
        # replay: every hot node, every cycle).
        peaks = self.proj.peaks_without(node.node_id, hs.resource, [w.workload_id for w, _ in movable])
        out: list[_Candidate] = []
        usage = self.view.workload_usage
        for (w, est), peak in zip(movable, peaks, strict=True):
            after = max(peak, (now_load - usage.get((w.workload_id, hs.resource), 0.0)) / cap)
            max_down = w.max_downtime_seconds or 60.0
            young = 1.0 if self.now - w.started_at < self.config.young_age_seconds else 0.0
            cost = est.duration_seconds / 60.0 + est.downtime_seconds / max_down + young
            out.append(_Candidate(w.priority, cost, w, est, after))
        out.sort(key=lambda c: (c.priority, c.cost, c.workload.workload_id))
        return out

    def _swap(self, node: Node, hs: Hotspot, cands: list[_Candidate], code: str) -> bool:
        """Exchange a large low-priority ``x`` here with a smaller ``y`` on a cool node.

        The search is bounded (``SWAP_CHECKS`` pairs) so a hopeless node costs little per cycle.
        """
        res, budget = hs.resource, self.SWAP_CHECKS
        for c in sorted(cands, key=lambda c: (c.priority, c.after_ratio))[:3]:
            x = c.workload
            x_size = max(self.proj.workload(x.workload_id, res)[0], default=0.0)
            for b_id in self.finder.coolest(node.pool, res, limit=8):
                b = self.view.nodes[b_id]
                if self.proj.peak_ratio(b_id, res) >= self.proj.target_limit(b, res):
                    break
                if self.finder.static_block(x, node, b, slots=2) is not None:
                    continue
                if self.gate.limits_block(node.node_id, b_id, node.pool, n=2) is not None:
                    break
                for y_id in self._by_size(b_id, res, x_size):
                    budget -= 1
                    if budget < 0:
                        break
                    y = self.view.workloads[y_id]
                    if (
                        self.gate.workload_block(y)
                        or compatible(y, b, node)
                        or self.gate.left_recently(y_id, node.node_id)
                    ):
                        continue
                    if y.sla_tier == x.sla_tier and not self.gate.tier_room(x.sla_tier, 2):
                        continue
                    if self.proj.peak_after(node.node_id, res, plus=(y_id,), minus=(x.workload_id,)) > hs.release_ratio:
                        break  # larger y only make it worse
                    if not self._swap_fits(b_id, x, y):
                        continue
                    est_y = self._estimate(y, b)
                    if y.max_downtime_seconds is not None and est_y.downtime_seconds > y.max_downtime_seconds:
                        continue
                    reason = self._reason("swap", hs, c.estimate)
                    id_x = self._order_id(x, node.node_id, b_id, "swap")
                    id_y = self._order_id(y, b_id, node.node_id, "swap")
                    self._issue(x, node, b_id, reason, c.estimate, swap_with=(id_y, y_id))
                    y_reason = self._reason("swap", hs, est_y)
                    self._issue(y, b, node.node_id, y_reason, est_y, swap_with=(id_x, x.workload_id))
                    return True
        self.swaps_failed += 1
        return False

    def _by_size(self, node_id: str, res: str, below: float) -> list[str]:
        """Workloads on ``node_id`` whose predicted peak is below ``below``, smallest first.

        Sorted once per node and cycle: hosted lists do not change within a cycle.
        """
        key = (node_id, res)
        ranked = self._sizes.get(key)
        if ranked is None:
            sizes = [(max(self.proj.workload(y, res)[0], default=0.0), y) for y in self.view.hosted_on(node_id)]
            ranked = self._sizes[key] = sorted(sizes)
        return [y for size, y in ranked if size < below]

    def _swap_fits(self, b_id: str, x: Workload, y: Workload) -> bool:
        b = self.view.nodes[b_id]
        return all(
            self.proj.peak_after(b_id, r, plus=(x.workload_id,), minus=(y.workload_id,)) <= self.proj.target_limit(b, r)
            for r in self.config.resources
        )

    # --- helpers -------------------------------------------------------------------------------
    def _estimate(self, w: Workload, node: Node) -> MigrationEstimate:
        key = (method_for(w.kind, node.driver), w.memory_bytes)
        got = self._estimates.get(key)
        if got is None:
            got = self._estimates[key] = self.config.migration.estimate(*key)
        return got

    def _reason(self, code: str, hs: Hotspot, est: MigrationEstimate) -> Reason:
        lead = est.duration_seconds + self.config.margin_seconds
        msg = f"{hs.resource} on {hs.node_id} predicted at {hs.peak_ratio:.2f} > {hs.threshold_ratio:.2f}"
        cap = self.view.nodes[hs.node_id].capacity.get(hs.resource, 0.0)
        now_ratio = self.view.usage_of_node(hs.node_id, hs.resource) / cap if cap > 0 else None
        return Reason(
            code, hs.resource, self.now + hs.breach_in_seconds, hs.peak_ratio, hs.threshold_ratio, lead, msg, now_ratio
        )

    def _order_id(self, w: Workload, source: str, target: str, code: str) -> str:
        return make_order_id(w.workload_id, source, target, code, self.now, self.config.decision_interval_seconds)

    def _issue(
        self,
        w: Workload,
        source: Node,
        target: str,
        reason: Reason,
        est: MigrationEstimate,
        swap_with: tuple[str, str] | None = None,
    ) -> Order:
        """Build, book and project an order; ``swap_with``: (order id, workload id) of the other half."""
        order = build_order(
            w,
            source,
            target,
            reason,
            est,
            self.now,
            self.config,
            swap_with[0] if swap_with else None,
            swap_with[1] if swap_with else None,
        )
        self.gate.admit(order)
        self.proj.move(w.workload_id, source.node_id, target)
        self.finder.moved((source.node_id, target))
        if self._fb is not None:
            self._fb[0].move(w.workload_id, source.node_id, target)
            self._fb[1].moved((source.node_id, target))
        self.decision.orders.append(order)
        return order

    def _explain(
        self,
        node_id: str,
        acted: bool,
        reason: str,
        resource: str | None,
        cands: list[CandidateNote],
        targets: list[TargetNote],
        message: str = "",
        hs: Hotspot | None = None,
        breach_at: float | None = None,
    ) -> None:
        """One explanation per node handled; it lists the orders issued since the previous one."""
        lim = self.config.explain_limit
        orders = self.decision.orders[self._explained_orders :]
        self._explained_orders = len(self.decision.orders)
        self.decision.explanations.append(
            Explanation(
                node_id,
                self.now,
                "acted" if acted else "no_action",
                reason,
                resource,
                tuple(cands[-lim:] if acted else cands[:lim]),
                tuple(targets[-lim:] if acted else targets[:lim]),
                message,
                pool=self.view.nodes[node_id].pool,
                policy="predictive",
                mode=self.config.mode,
                predicted_breach_at=self.now + hs.breach_in_seconds if hs is not None else breach_at,
                predicted_peak_ratio=hs.peak_ratio if hs is not None else None,
                threshold_ratio=hs.threshold_ratio if hs is not None else None,
                order_ids=tuple(o.order_id for o in orders),
            )
        )
