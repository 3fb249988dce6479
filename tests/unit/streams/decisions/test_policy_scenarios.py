"""Scenario tests of the predictive policy: the behaviours ARCHITECTURE §6 promises."""

from __future__ import annotations

import itertools

from _decision_fixtures import GIB, HORIZONS, cpu_config, make_view, node, replay, workload

from streams.decisions import POLICIES, EventWindow, PolicyState
from streams.decisions.cluster import ResourceForecast


def spike_at(now: float) -> dict[str, tuple[float, ...]]:
    """``hi`` on n1 ramps to a spike at t=900: n1 breaches 0.85 x 10 cores from t=900 on."""

    def hi_at(t: float) -> float:
        return 7.5 if t >= 900 else 3.0

    hi = (hi_at(now), *(hi_at(now + h) for h in HORIZONS))
    return {"hi": hi, "lo": (2.0,) * 6, "mid": (1.0,) * 6, "other": (2.0,) * 6}


def test_predicted_spike_yields_an_order_before_the_breach() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("hi", "n1", 9), workload("lo", "n1", 0), workload("mid", "n1", 5), workload("other", "n2", 3)]
    history, placed = replay("predictive", nodes, wls, spike_at, steps=5, config=cpu_config())
    orders = [(t, o) for t, d in history for o in d.orders]
    assert orders, "no order was issued"
    t, first = orders[0]
    assert t < 900 and first.reason.predicted_breach_at == 900
    assert first.workload_id == "lo" and first.target_node == "n2"
    assert first.reason.code == "predicted_overload" and first.reason.resource == "cpu"
    assert first.order_id.startswith("ord-") and first.deadline_at > t
    assert placed["hi"].node_id == "n1"  # the high-priority workload stays and gets the room
    # not earlier than the lead time: at t=300 the breach (600 s away) is hot but too far to act on
    assert t == 600
    waited = [e for e in history[1][1].explanations if e.reason == "lead_time"]
    assert history[1][1].orders == [] and waited and waited[0].decision == "no_action"


def test_reactive_acts_only_after_the_breach() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("hi", "n1", 9), workload("lo", "n1", 0), workload("mid", "n1", 5), workload("other", "n2", 3)]
    history, _ = replay("reactive", nodes, wls, spike_at, steps=5, config=cpu_config())
    first = next(t for t, d in history if d.orders)
    assert first >= 900


def test_maintenance_window_is_evacuated_before_it_starts() -> None:
    start = 3600.0
    nodes = [node("n1"), node("n2"), node("n3")]
    wls = [workload(f"w{i}", "n1", i, memory_bytes=4 * GIB) for i in range(5)] + [workload("pin", "n1", pinned=True)]
    window = EventWindow("mw1", "maintenance", start, start + 7200, nodes=frozenset({"n1"}))
    config = cpu_config(safety=cpu_config().safety.__class__(max_per_node=1, max_per_pool=2))
    history, placed = replay(
        "predictive",
        nodes,
        wls,
        lambda t: {w.workload_id: 1.0 for w in wls},
        steps=int(start // 300) + 4,
        config=config,
        events=(window,),
    )
    issued = [(t, o) for t, d in history for o in d.orders]
    assert {o.workload_id for _, o in issued} == {f"w{i}" for i in range(5)}
    assert all(t < start and o.reason.code == "maintenance_evacuation" for t, o in issued)
    assert all(o.target_node != "n1" for _, o in issued)  # keep new work off
    assert [w for w, p in placed.items() if p.node_id == "n1"] == ["pin"]
    assert issued[0][1].workload_id == "w4"  # most critical first
    # the pinned workload is explained, not moved
    notes = [c for _, d in history for e in d.explanations for c in e.candidates if c.workload_id == "pin"]
    assert notes and notes[0].excluded_by == "pinned"


def test_flapping_load_yields_no_ping_pong() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("a", "n1", 5), workload("b", "n2", 5), workload("x", "n1", 0), workload("y", "n2", 0)]

    def flap(now: float) -> dict[str, float]:
        odd = int(now // 300) % 2
        return {"a": 8.0 if odd else 3.0, "b": 3.0 if odd else 8.0, "x": 1.5, "y": 1.5}

    history, _ = replay("predictive", nodes, wls, flap, steps=60, config=cpu_config(persistence=1))
    trail: dict[str, list[tuple[float, str, str]]] = {}
    for t, d in history:
        for o in d.orders:
            trail.setdefault(o.workload_id, []).append((t, o.source_node, o.target_node))
    window = cpu_config().safety.ping_pong_window_seconds
    for moves in trail.values():
        for (t1, src, _), (t2, _, dst) in itertools.pairwise(moves):
            assert not (dst == src and t2 - t1 < window), moves
    assert sum(len(m) for m in trail.values()) <= 4


def test_a_node_that_cannot_be_helped_gets_an_explanation_not_an_order() -> None:
    nodes = [node("n1"), node("n2", cpu=4.0)]
    wls = [
        workload("big", "n1", 0),
        workload("pin", "n1", 0, pinned=True),
        workload("vip", "n1", 9, migratable=False),
        workload("full", "n2", 0),
    ]
    cpu = {"big": 5.0, "pin": 2.0, "vip": 2.0, "full": 3.0}
    view = make_view(nodes, wls, cpu)
    state = PolicyState()
    decision = POLICIES["predictive"](view, 0.0, cpu_config(persistence=1), state)
    assert decision.orders == []
    (exp,) = [e for e in decision.explanations if e.node_id == "n1"]
    assert exp.decision == "no_action" and exp.resource == "cpu"
    excluded = {c.workload_id: c.excluded_by for c in exp.candidates}
    assert excluded["pin"] == "pinned" and excluded["vip"] == "not_migratable"
    assert excluded["big"] == "no_target"
    assert any(t.node_id == "n2" and t.excluded_by == "would_overload" for t in exp.targets)
    assert exp.to_dict()["schema_version"] == 1


def test_persistence_and_hysteresis() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("a", "n1", 5, migratable=False), workload("b", "n2", 5)]
    state = PolicyState()
    config = cpu_config(persistence=2, overload_fallback=False)

    def decide(now_load: float, predicted: float) -> None:
        cpu = {"a": (now_load, *(predicted,) * len(HORIZONS)), "b": 1.0}
        POLICIES["predictive"](make_view(nodes, wls, cpu), 0.0, config, state)

    decide(5.0, 9.0)
    assert ("n1", "cpu") not in state.latched  # one prediction is not enough
    decide(5.0, 9.0)
    assert ("n1", "cpu") in state.latched
    decide(5.0, 8.0)  # below trigger (8.5) but above release (7.5): stays hot
    assert ("n1", "cpu") in state.latched
    decide(5.0, 7.0)
    assert ("n1", "cpu") not in state.latched
    decide(9.0, 7.0)  # without the overload fallback, one observation is not enough either
    assert ("n1", "cpu") not in state.latched
    config = cpu_config(persistence=2, overload_fallback=True)
    decide(9.0, 7.0)  # with the overload fallback an overload seen now latches at once
    assert ("n1", "cpu") in state.latched


def test_declared_peak_triggers_preemptive_move() -> None:
    nodes = [node("n1", pool="p"), node("n2", pool="p")]
    wls = [workload("hi", "n1", 9), workload("lo", "n1", 0)]
    peak = EventWindow("ingest", "ingestion_peak", 600.0, 1800.0, nodes=frozenset({"n1"}), delta_ratio=0.4)
    view = make_view(nodes, wls, {"hi": 3.0, "lo": 2.0}, events=(peak,))
    state = PolicyState()
    POLICIES["predictive"](view, 0.0, cpu_config(), state)
    later = make_view(nodes, wls, {"hi": 3.0, "lo": 2.0}, now=300.0, events=(peak,))
    decision = POLICIES["predictive"](later, 300.0, cpu_config(), state)
    assert [o.reason.code for o in decision.orders] == ["declared_peak"]
    assert decision.orders[0].workload_id == "lo"


def test_swap_when_no_one_way_move_fits() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [
        workload("hi", "n1", 9, migratable=False),
        workload("big", "n1", 0),
        workload("small", "n2", 1),
        workload("n2hi", "n2", 9, migratable=False),
    ]
    cpu = {"hi": 5.0, "big": 4.0, "small": 1.0, "n2hi": 3.5}
    decision = POLICIES["predictive"](make_view(nodes, wls, cpu), 0.0, cpu_config(persistence=1), PolicyState())
    got = {o.workload_id: o for o in decision.orders}
    assert set(got) == {"big", "small"}
    assert got["big"].target_node == "n2" and got["small"].target_node == "n1"
    assert got["big"].swap_with == got["small"].order_id and got["small"].swap_with == got["big"].order_id


def test_recommend_mode_orders_are_dry_run_and_reserve_nothing() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("hi", "n1", 9, migratable=False), workload("lo", "n1", 0)]
    state = PolicyState()
    view = make_view(nodes, wls, {"hi": 7.0, "lo": 2.0})
    decision = POLICIES["predictive"](view, 0.0, cpu_config(persistence=1, mode="recommend"), state)
    assert [o.dry_run for o in decision.orders] == [True] and decision.orders[0].mode == "recommend"
    assert state.open_orders == {}
    again = POLICIES["predictive"](view, 300.0, cpu_config(persistence=1, mode="recommend"), state)
    assert again.orders == []  # not repeated while in cooldown


def test_stale_order_expires_and_backs_off() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("hi", "n1", 9, migratable=False), workload("lo", "n1", 0)]
    view = make_view(nodes, wls, {"hi": 7.0, "lo": 2.0})
    state = PolicyState()
    config = cpu_config(persistence=1)
    (order,) = POLICIES["predictive"](view, 0.0, config, state).orders
    blocked = POLICIES["predictive"](view, 10.0, config, state)
    assert blocked.orders == [] and "lo" in state.open_orders  # one in-flight order per workload
    late = POLICIES["predictive"](view, order.deadline_at + 1, config, state)
    assert late.expired == [order.order_id] and late.orders == []  # cooldown after expiry
    assert state.cooldown_until["lo"] > order.deadline_at


def test_node_level_forecast_wins_over_workload_aggregate() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("hi", "n1", 9), workload("lo", "n1", 0)]
    flat = ResourceForecast(0.0, HORIZONS, (9.5,) * 5, (9.8,) * 5)
    view = make_view(nodes, wls, {"hi": 2.0, "lo": 2.0}, node_forecasts={("n1", "cpu"): flat})
    decision = POLICIES["predictive"](view, 0.0, cpu_config(persistence=1), PolicyState())
    assert [o.workload_id for o in decision.orders] == ["lo"]


def test_an_overloaded_node_may_shed_to_a_node_hot_only_on_its_upper_bound() -> None:
    """Overloaded now, wide forecasts everywhere: every node is latched on its upper bound, so
    only the best-estimate pass can act, and it judges targets on the mean like the source."""
    nodes = [node("n1"), node("n2")]
    wls = [workload("lo", "n1", 0), workload("hi", "n1", 9), workload("x", "n2", 5)]
    cpu = {"lo": 4.0, "hi": 5.0, "x": 3.0}  # n1 at 9.0 of 10 cores now; n2 at 3.0
    state = PolicyState()
    decision = POLICIES["predictive"](make_view(nodes, wls, cpu, band=6.0), 0.0, cpu_config(persistence=1), state)
    assert ("n2", "cpu") in state.latched, "n2's upper bound, 3 + 6 cores, is over the trigger"
    (order,) = decision.orders
    assert (order.workload_id, order.target_node) == ("lo", "n2"), "7.0 of 10 cores on the mean fits n2"
