"""Hypothesis property tests of the policy invariants (ARCHITECTURE §6.4-6.5)."""

from __future__ import annotations

from _decision_fixtures import HORIZONS, node, workload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.decisions import POLICIES, ClusterView, EventWindow, InFlight, PolicyConfig, PolicyState, SafetyConfig
from streams.decisions.cluster import ResourceForecast
from streams.decisions.targets import compatible


@st.composite
def clusters(draw: st.DrawFn) -> tuple[ClusterView, PolicyConfig]:
    n_nodes = draw(st.integers(2, 7))
    nodes = [
        node(
            f"n{i}",
            cpu=draw(st.sampled_from([4.0, 8.0])),
            pool=draw(st.sampled_from(["p1", "p2"])),
            arch=draw(st.sampled_from(["x86_64", "x86_64", "aarch64"])),
            labels={"zone": draw(st.sampled_from(["a", "b"]))},
        )
        for i in range(n_nodes)
    ]
    wls = []
    usage: dict[tuple[str, str], float] = {}
    forecasts: dict[tuple[str, str], ResourceForecast] = {}
    for i in range(draw(st.integers(1, 16))):
        wid = f"w{i}"
        home = draw(st.sampled_from(nodes)).node_id
        req = draw(st.sampled_from([{}, {}, {"zone": "a"}]))
        wls.append(
            workload(
                wid,
                home,
                draw(st.integers(0, 3)),
                sla_tier=draw(st.sampled_from(["gold", "bronze"])),
                migratable=draw(st.booleans()) or True,
                pinned=draw(st.integers(0, 9)) == 0,
                kind=draw(st.sampled_from(["vm", "container", "function"])),
                required_labels=req,
                max_downtime_seconds=draw(st.sampled_from([None, 0.5, 30.0])),
            )
        )
        now_load = draw(st.floats(0.0, 4.0))
        mean = tuple(draw(st.floats(0.0, 4.0)) for _ in HORIZONS)
        usage[(wid, "cpu")] = now_load
        forecasts[(wid, "cpu")] = ResourceForecast(0.0, HORIZONS, mean, tuple(m + draw(st.floats(0, 1)) for m in mean))
    events = tuple(
        EventWindow(
            f"m{i}",
            "maintenance",
            draw(st.floats(0, 4000)),
            9000.0,
            nodes=frozenset({draw(st.sampled_from(nodes)).node_id}),
        )
        for i in range(draw(st.integers(0, 2)))
    )
    in_flight = {}
    if wls and draw(st.booleans()):
        w = draw(st.sampled_from(wls))
        other = draw(st.sampled_from(nodes)).node_id
        if other != w.node_id:
            in_flight[w.workload_id] = InFlight("ord-x", w.workload_id, w.node_id, other, 0.0, 10_000.0)
    safety = SafetyConfig(
        max_per_node=draw(st.integers(1, 2)),
        max_per_pool=draw(st.integers(1, 4)),
        max_global_rate=draw(st.integers(1, 5)),
        tier_budgets={"gold": draw(st.integers(0, 2))},
    )
    config = PolicyConfig(resources=("cpu",), persistence=draw(st.integers(1, 2)), safety=safety)
    view = ClusterView(
        {n.node_id: n for n in nodes},
        {w.workload_id: w for w in wls},
        HORIZONS,
        workload_forecasts=forecasts,
        workload_usage=usage,
        events=events,
        in_flight=in_flight,
    )
    return view, config


def _run(view: ClusterView, config: PolicyConfig, policy: str, cycles: int = 3) -> list[tuple[float, list, list]]:
    state = PolicyState()
    out = []
    for t in range(cycles):
        d = POLICIES[policy](view, t * 300.0, config, state)
        out.append((t * 300.0, d.orders, d.expired))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.sampled_from(["predictive", "reactive"]))
def test_orders_respect_compatibility_maintenance_limits_and_budgets(
    case: tuple[ClusterView, PolicyConfig], policy: str
) -> None:
    view, config = case
    safety = config.safety
    history = _run(view, config, policy)
    open_by_workload = dict.fromkeys(view.in_flight)  # nothing completes: the view never changes
    issued: list[tuple[float, object]] = []
    for now, orders, expired in history:
        for _t, o in issued:  # only a stale (expired) order frees its workload
            if o.order_id in expired:
                del open_by_workload[o.workload_id]
        for o in orders:
            w = view.workloads[o.workload_id]
            src, dst = view.nodes[o.source_node], view.nodes[o.target_node]
            assert o.source_node == w.node_id and o.target_node != o.source_node
            assert compatible(w, src, dst) is None
            assert w.migratable and not w.pinned
            assert not any(
                e.covers(dst, view.hosted_on(dst.node_id)) and e.overlaps(now, now + config.decision_interval_seconds)
                for e in view.events
            ), "target in maintenance"
            if policy == "predictive":
                horizon_end = now + max(HORIZONS) + config.maintenance_guard_seconds
                assert not any(
                    e.covers(dst, view.hosted_on(dst.node_id)) and e.overlaps(now, horizon_end) for e in view.events
                ), "target near maintenance"
            assert o.workload_id not in open_by_workload, "two in-flight orders for one workload"
            open_by_workload[o.workload_id] = None
            issued.append((now, o))
        if policy == "predictive":
            recent = [o for t, o in issued if now - t < safety.rate_window_seconds]
            assert len(recent) <= safety.max_global_rate
            gold = [o for t, o in issued if now - t < safety.budget_window_seconds and o.sla_tier == "gold"]
            assert len(gold) <= safety.tier_budgets["gold"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_node_and_pool_limits_hold_per_cycle(case: tuple[ClusterView, PolicyConfig]) -> None:
    view, config = case
    for _, orders, _ in _run(view, config, "predictive", cycles=1):
        touches: dict[str, int] = {}
        pools: dict[str, int] = {}
        for f in view.in_flight.values():
            for n in {f.source_node, f.target_node}:
                touches[n] = touches.get(n, 0) + 1
            pools[view.nodes[f.source_node].pool] = pools.get(view.nodes[f.source_node].pool, 0) + 1
        for o in orders:
            for n in {o.source_node, o.target_node}:
                touches[n] = touches.get(n, 0) + 1
                assert touches[n] <= config.safety.max_per_node
            pools[o.pool] = pools.get(o.pool, 0) + 1
            assert pools[o.pool] <= config.safety.max_per_pool


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.sampled_from(["predictive", "reactive"]))
def test_order_ids_are_stable_across_replays(case: tuple[ClusterView, PolicyConfig], policy: str) -> None:
    view, config = case
    first = [[o.to_dict() for o in orders] for _, orders, _ in _run(view, config, policy)]
    again = [[o.to_dict() for o in orders] for _, orders, _ in _run(view, config, policy)]
    assert first == again
    ids = [o["order_id"] for orders in first[:1] for o in orders]
    assert len(ids) == len(set(ids))
