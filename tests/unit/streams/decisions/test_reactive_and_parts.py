"""Reactive baseline behaviour, the no-op baseline, and the small parts (model, ids, records, scorer)."""

from __future__ import annotations

import pytest
from _decision_fixtures import GIB, cpu_config, make_view, node, workload

from streams.decisions import POLICIES, EventWindow, PolicyConfig, PolicyConfigError, PolicyState
from streams.decisions.migration_model import MigrationModel, MigrationModelError, method_for
from streams.decisions.order_id import make_order_id
from streams.decisions.shadow import ShadowScorer


def test_reactive_moves_lowest_priority_from_each_hot_node_to_least_loaded() -> None:
    nodes = [node("hot1"), node("hot2"), node("cool"), node("cooler")]
    wls = [
        workload("a", "hot1", 5),
        workload("b", "hot1", 1),
        workload("c", "hot1", 1),
        workload("d", "hot2", 0),
        workload("e", "hot2", 3),
        workload("f", "cool", 0),
        workload("g", "cooler", 0),
    ]
    cpu = {"a": 5.0, "b": 2.0, "c": 2.5, "d": 4.0, "e": 5.0, "f": 3.0, "g": 1.0}
    d = POLICIES["reactive"](make_view(nodes, wls, cpu), 0.0, cpu_config(), PolicyState())
    got = {o.source_node: o for o in d.orders}
    assert set(got) == {"hot1", "hot2"}  # at most one move per hot node per cycle
    assert got["hot1"].workload_id == "c"  # lowest priority, then the largest
    assert got["hot2"].workload_id == "d"
    assert got["hot1"].target_node == "cooler" and got["hot1"].reason.code == "current_overload"
    assert got["hot2"].target_node == "cool"  # cooler took c: 1.0 + 2.5 > 3.0


def test_reactive_ignores_forecasts_and_quiet_nodes() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("a", "n1", 0), workload("b", "n1", 1)]
    # forecast says a huge spike, but utilisation now is fine: reactive does nothing
    view = make_view(nodes, wls, {"a": (1.0, 9.0, 9.0, 9.0, 9.0, 9.0), "b": 1.0})
    assert POLICIES["reactive"](view, 0.0, cpu_config(), PolicyState()).orders == []
    assert POLICIES["none"](make_view(nodes, wls, {"a": 9.0, "b": 1.0}), 0.0, cpu_config(), PolicyState()).orders == []


def test_reactive_skips_targets_in_maintenance_and_explains_when_stuck() -> None:
    nodes = [node("n1"), node("n2")]
    wls = [workload("a", "n1", 0), workload("b", "n1", 1)]
    mw = EventWindow("mw", "maintenance", 0.0, 3600.0, nodes=frozenset({"n2"}))
    d = POLICIES["reactive"](
        make_view(nodes, wls, {"a": 5.0, "b": 4.0}, events=(mw,)), 10.0, cpu_config(), PolicyState()
    )
    assert d.orders == []
    assert [(e.node_id, e.decision) for e in d.explanations] == [("n1", "no_action")]
    assert {c.excluded_by for c in d.explanations[0].candidates} == {"no_target"}


def test_migration_model_methods() -> None:
    m = MigrationModel()
    live, snap, fn = (m.estimate(k, 4 * GIB) for k in ("live", "snapshot", "reroute"))
    assert live.downtime_seconds < 1.0 < snap.downtime_seconds and fn.downtime_seconds == 0.0
    assert snap.duration_seconds > fn.duration_seconds and live.transferred_bytes >= 4 * GIB
    assert m.estimate("live", 8 * GIB).duration_seconds > live.duration_seconds
    # a dirty rate above the bandwidth never converges: stops after max_rounds, with a big downtime
    hot = MigrationModel(dirty_rate_bytes_per_second=200e6).estimate("live", 4 * GIB)
    assert hot.downtime_seconds > 10
    assert method_for("vm") == "live" and method_for("container") == "snapshot" and method_for("function") == "reroute"
    assert method_for("vm", "sim") == "simulated"
    with pytest.raises(MigrationModelError):
        m.estimate("teleport", 1)
    with pytest.raises(MigrationModelError):
        MigrationModel(bandwidth_bytes_per_second=0)


def test_order_id_depends_on_identity_and_cycle_only() -> None:
    a = make_order_id("w", "n1", "n2", "predicted_overload", 600.0, 300.0)
    assert a == make_order_id("w", "n1", "n2", "predicted_overload", 899.9, 300.0)
    assert a != make_order_id("w", "n1", "n2", "predicted_overload", 900.0, 300.0)
    assert a != make_order_id("w", "n1", "n3", "predicted_overload", 600.0, 300.0)
    assert a != make_order_id("w", "n1", "n2", "swap", 600.0, 300.0)


def test_config_validation() -> None:
    with pytest.raises(PolicyConfigError):
        PolicyConfig(mode="yolo")
    with pytest.raises(PolicyConfigError):
        PolicyConfig(resources=("gpu",))
    with pytest.raises(PolicyConfigError):
        PolicyConfig(hysteresis_ratio=0.9)


def test_shadow_scorer_counts_false_positives_and_misses() -> None:
    s = ShadowScorer(tolerance_seconds=0.0, lookback_seconds=600.0)
    s.record_prediction("n1", "cpu", 0.0, 300.0)  # nothing happens on n1: false positive
    s.record_prediction("n2", "cpu", 0.0, 300.0)  # n2 overloads at 300: true positive
    for t in (0.0, 300.0, 600.0):
        s.observe("n1", "cpu", t, 0.5, 0.85)
        s.observe("n2", "cpu", t, 0.9 if t == 300.0 else 0.5, 0.85)
        s.observe("n3", "cpu", t, 0.9 if t == 600.0 else 0.5, 0.85)  # nobody predicted: a miss
    score = s.score(10_000.0)
    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 1, 1)
    assert score.precision == 0.5 and score.recall == 0.5
    assert s.score(100.0).pending == 1  # n1's window is still open; n2 already overloaded


def test_policy_state_round_trips_through_json() -> None:
    import json

    nodes = [node("n1"), node("n2")]
    wls = [workload("hi", "n1", 9, migratable=False), workload("lo", "n1", 0)]
    view = make_view(nodes, wls, {"hi": 7.0, "lo": 2.0})
    state = PolicyState()
    config = cpu_config(persistence=1)
    POLICIES["predictive"](view, 0.0, config, state)
    moved = make_view(nodes, [wls[0], workload("lo", "n2", 0)], {"hi": 7.0, "lo": 2.0})
    POLICIES["predictive"](moved, 300.0, config, state)  # completes: history + cooldown
    POLICIES["predictive"](view, 600.0, config, state)
    restored = PolicyState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    assert restored.history["lo"] == [(300.0, "n1", "n2")]
