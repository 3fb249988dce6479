"""The pool router of the sharded decision processors (pure: no Kafka)."""

from __future__ import annotations

from streams.decisions.sharding import BROADCAST, PoolRouter, parse_key, pool_partition, state_key
from streams.live.cluster_state import LiveClusterState


def node(nid: str, pool: str) -> dict:
    return {"node_id": nid, "fingerprint": {"pool": pool}}


def test_a_pool_always_lands_on_the_same_partition_and_pools_spread():
    parts = {pool_partition(f"pool-{k}", 6) for k in range(60)}
    assert parts == set(range(6))
    assert all(pool_partition("blue", 6) == pool_partition("blue", 6) for _ in range(3))


def test_keys_round_trip_even_with_bars_in_the_subject():
    assert parse_key(state_key("blue", "forecasts", "workload:a|b:cpu")) == ("blue", "forecasts", "workload:a|b:cpu")


def test_node_usage_announces_its_pool_once_and_routes_to_it():
    r = PoolRouter()
    out, announce = r.route("node_usage", node("n1", "blue"))
    assert announce == "blue" and [o.pool for o in out] == ["blue"]
    out, announce = r.route("node_usage", node("n1", "blue"))
    assert announce is None
    _, announce = r.route("node_usage", node("n1", "green"))
    assert announce == "green", "a node that changes pool is announced again"


def test_workload_records_wait_for_their_nodes_pool_keeping_the_latest_per_subject():
    r = PoolRouter()
    for cores in (1.0, 2.0):
        out, _ = r.route("workload_usage", {"workload_id": "w", "node_id": "n1", "cpu_cores_used": cores})
        assert out == []
    r.route("migrations", {"order_id": "o1", "workload_id": "w", "source_node": "n1"})
    assert r.pending == 2
    flushed = r.learn("n1", "blue")
    assert r.pending == 0
    got = {parse_key(o.key)[1]: o.value for o in flushed}
    latest = got["workload_usage"]
    assert latest is not None and latest["cpu_cores_used"] == 2.0 and "migrations" in got
    assert all(o.pool == "blue" for o in flushed)
    out, _ = r.route("workload_usage", {"workload_id": "w", "node_id": "n1", "cpu_cores_used": 3.0})
    assert [o.pool for o in out] == ["blue"]


def test_pending_is_bounded():
    r = PoolRouter(max_pending=2)
    for k in range(5):
        r.route("workload_usage", {"workload_id": f"w{k}", "node_id": "n1"})
    assert r.pending == 2 and r.dropped == 3


def test_events_and_policies_go_to_every_pool_and_policy_tombstones_keep_their_key():
    r = PoolRouter()
    out, _ = r.route("events", {"event_id": "e1"})
    assert out[0].pool == BROADCAST
    out, _ = r.route("policies", None, key="workload:w")
    assert out[0].pool == BROADCAST and out[0].value is None and parse_key(out[0].key)[2] == "workload:w"


def test_node_forecasts_carry_their_pool():
    r = PoolRouter()
    rec = {"subject_kind": "node", "subject": "n9", "resource": "cpu", "node_id": "n9", "pool": "red"}
    out, _ = r.route("forecasts", rec)
    assert [o.pool for o in out] == ["red"]


def test_dropping_a_pool_forgets_its_nodes_workloads_and_orders():
    from tests.unit.streams.live.test_cluster_state import node, wl

    s = LiveClusterState(horizons_seconds=(60.0,))
    s.on_node_usage(node("a", 100.0, 0.5, ["wa"], pool="blue"))
    s.on_node_usage(node("b", 100.0, 0.5, ["wb"], pool="green"))
    s.on_workload_usage(wl("wa", "a", 100.0, 1.0))
    s.on_workload_usage(wl("wb", "b", 100.0, 1.0))
    order = {"order_id": "o", "workload_id": "wa", "source_node": "a", "target_node": "a2", "issued_at": 100.0,
             "deadline_at": 900.0}  # fmt: skip
    s.on_order(order)
    s.drop_pools({"blue"})
    assert set(s.nodes) == {"b"} and set(s.workloads) == {"wb"} and s.pools() == ["green"]
    assert s.in_flight == {}
