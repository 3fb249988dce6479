"""Orders and explanations from real decisions validate against the Kafka contracts."""

from __future__ import annotations

import pytest
from _decision_fixtures import GIB, cpu_config, make_view, node, replay, workload

from schemas.codec import codec
from streams.decisions import POLICIES, EventWindow, PolicyState, SafetyConfig
from streams.decisions.orders import Decision


def _decisions() -> list[Decision]:
    out: list[Decision] = []
    nodes = [node("n1"), node("n2"), node("n3", cpu=4.0)]
    # predicted overload, one-way
    wls = [workload("hi", "n1", 9, migratable=False), workload("lo", "n1", 0, kind="container", memory_bytes=3 * GIB)]
    out.append(
        POLICIES["predictive"](
            make_view(nodes, wls, {"hi": 7.0, "lo": 2.0}), 1e9, cpu_config(persistence=1), PolicyState()
        )
    )
    # swap
    swap_nodes = [node("n1"), node("n2")]
    swap = [
        workload("hi", "n1", 9, migratable=False),
        workload("big", "n1", 0),
        workload("small", "n2", 1),
        workload("n2hi", "n2", 9, migratable=False),
    ]
    cpu = {"hi": 5.0, "big": 4.0, "small": 1.0, "n2hi": 3.5}
    out.append(POLICIES["predictive"](make_view(swap_nodes, swap, cpu), 1e9, cpu_config(persistence=1), PolicyState()))
    # maintenance evacuation (with a pinned workload explained)
    mw = EventWindow("mw-1", "maintenance", 1800.0, 9000.0, nodes=frozenset({"n1"}))
    evac = [workload("a", "n1", 1, kind="function"), workload("pin", "n1", pinned=True)]
    history, _ = replay(
        "predictive",
        nodes,
        evac,
        lambda t: {"a": 1.0, "pin": 1.0},
        3,
        cpu_config(safety=SafetyConfig(max_per_node=1)),
        events=(mw,),
    )
    out.extend(d for _, d in history)
    # reactive, and a hot node that cannot be helped, in recommend mode
    hot = [workload("x", "n1", 0), workload("y", "n1", 1), workload("z", "n3", 0)]
    view = make_view(nodes, hot, {"x": 5.0, "y": 4.5, "z": 3.9})
    out.append(POLICIES["reactive"](view, 1e9, cpu_config(), PolicyState()))
    out.append(POLICIES["predictive"](view, 1e9, cpu_config(persistence=1, mode="recommend"), PolicyState()))
    return out


@pytest.fixture(scope="module")
def decisions() -> list[Decision]:
    return _decisions()


def test_orders_validate_against_the_order_schema(decisions: list[Decision]) -> None:
    orders = [o for d in decisions for o in d.orders]
    assert {o.reason.code for o in orders} >= {
        "predicted_overload",
        "swap",
        "maintenance_evacuation",
        "current_overload",
    }
    assert {o.method for o in orders} >= {"live", "snapshot", "reroute"}
    assert any(o.dry_run and o.mode == "recommend" for o in orders)
    order_codec = codec("order")
    for o in orders:
        order_codec.validate(o.to_dict())


def test_explanations_validate_against_the_explanation_schema(decisions: list[Decision]) -> None:
    explanations = [e for d in decisions for e in d.explanations]
    assert {e.decision for e in explanations} == {"acted", "no_action"}
    acted = [e for e in explanations if e.decision == "acted"]
    assert all(e.order_ids for e in acted)  # an acted explanation names its orders
    explanation_codec = codec("explanation")
    for e in explanations:
        explanation_codec.validate(e.to_dict())


def test_swap_halves_name_each_other(decisions: list[Decision]) -> None:
    (swap,) = [d for d in decisions if any(o.reason.code == "swap" for o in d.orders)]
    a, b = (o.to_dict() for o in swap.orders)
    assert a["swap_with"] == {"order_id": b["order_id"], "workload_id": b["workload_id"]}
    assert b["swap_with"] == {"order_id": a["order_id"], "workload_id": a["workload_id"]}
