"""Decision processors sharded by pool: two real worker processes against the real broker.

Each worker holds (and decides for) only the pools of the pool-state partitions it owns; the two
sets are disjoint and cover every pool, and each pool's hot node gets an order. When one worker
stops, the other takes its pools over: it rebuilds their view from the compacted pool-state topic
(the cool target nodes of those pools send nothing after the stop, so it can only know them from
there) and orders work off a node that turns hot afterwards.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from plba.faults.injection import crash_reasons
from schemas.topics import TOPICS
from streams.decisions.sharding import pool_partition
from tests.integration.kafka_io import produce, read_topic, running, settings_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

GiB = 1024**3
PARTITIONS = TOPICS["pool_state"].partitions
# One pool per pool-state partition, whatever the partition assignment, both workers get pools.
POOLS = tuple(sorted({pool_partition(f"pool-{k}", PARTITIONS): f"pool-{k}" for k in range(200)}.values()))
HOLDING = re.compile(r"decision shard: holding pools \[([^\]]*)\]; deciding for \[([^\]]*)\]")


def node_usage(node: str, pool: str, at: float, cpu_ratio: float, workloads: list[str]) -> dict:
    return {
        "schema_version": 1, "node_id": node, "sampled_at": at, "interval_seconds": 5.0, "cpu_ratio": cpu_ratio,
        "mem_used_bytes": 4 * GiB, "mem_total_bytes": 32 * GiB, "disk_read_bytes_per_second": 0.0,
        "disk_write_bytes_per_second": 0.0, "net_rx_bytes_per_second": 0.0, "net_tx_bytes_per_second": 0.0,
        "capacity": {"cpu_cores": 8, "mem_bytes": 32 * GiB, "io_bytes_per_second": 1e9},
        "fingerprint": {"arch": "x86_64", "cpu_model": "test", "flags_digest": "0123abcd", "cores": 8,
                        "memory_class": "32Gi", "drivers": {"sim": "1"}, "labels": {}, "pool": pool, "zone": "z1"},
        "workloads": workloads, "executor_endpoint": "127.0.0.1:50051",
    }  # fmt: skip


def workload_usage(wid: str, node: str, at: float, cores: float, priority: int) -> dict:
    return {
        "schema_version": 1, "workload_id": wid, "node_id": node, "kind": "vm", "driver": "sim", "sampled_at": at,
        "interval_seconds": 5.0, "cpu_cores_used": cores, "cpu_ratio": cores / 8, "mem_used_bytes": 512 * 1024**2,
        "io_bytes_per_second": 0.0, "priority": priority, "started_at": at - 7200,
    }  # fmt: skip


def tick(at: float, hot: str, spares: bool) -> tuple[list, list]:
    """One sampling interval of every pool: node ``hot-<pool>`` (``hot`` prefix) at 95 % with three
    workloads; with ``spares`` also two cool nodes per pool."""
    nodes, loads = [], []
    for pool in POOLS:
        h = f"{hot}-{pool}"
        ws = [(f"{h}-hi", 3.0, 900), (f"{h}-mid", 1.6, 500), (f"{h}-lo", 3.0, 10)]
        nodes.append((h.encode(), node_usage(h, pool, at, 0.95, [w for w, _, _ in ws])))
        loads += [(w.encode(), workload_usage(w, h, at, c, p)) for w, c, p in ws]
        if spares:
            for cool in (f"cool-{pool}", f"spare-{pool}"):
                nodes.append((cool.encode(), node_usage(cool, pool, at, 0.10, [f"{cool}-w"])))
                loads.append((f"{cool}-w".encode(), workload_usage(f"{cool}-w", cool, at, 0.8, 100)))
    return nodes, loads


def holding(log: Path) -> tuple[set[str], set[str]] | None:
    """The last (held, deciding) pools a worker logged."""
    found = HOLDING.findall(log.read_text(errors="replace")) if log.exists() else []
    if not found:
        return None
    held, deciding = found[-1]
    return {p for p in held.split(",") if p}, {p for p in deciding.split(",") if p}


def wait_for(check, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


class Ticker:
    """Produces one tick of phase-1 usage per wall second (5 s of event time each) until stopped."""

    def __init__(self, settings, t0: float) -> None:
        self.settings, self.at, self.stop = settings, t0, threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                nodes, loads = tick(self.at, "hot", spares=True)
                produce(self.settings, "workload_usage", loads)
                produce(self.settings, "node_usage", nodes)
                self.at += 5.0
                self.stop.wait(1.0)
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_two_workers_own_disjoint_pools_and_one_takes_over_when_the_other_stops(kafka_settings, tmp_path):
    s = kafka_settings
    assert len(POOLS) == PARTITIONS
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]

    def env(name: str) -> dict[str, str]:
        (tmp_path / name / "faust").mkdir(parents=True)  # each worker its own Faust data folder
        return settings_env(
            s, PLBA_DECISION_INTERVAL_SECONDS="10", PLBA_WORKER_DISPATCH="false", PLBA_METRICS_PORT="0",
            PLBA_DATA_DIR=str(tmp_path / name),
        )  # fmt: skip

    ticker = Ticker(s, 1_800_000_000.0)
    with ExitStack() as b_stack:
        a_stack = ExitStack()
        with a_stack:
            a = a_stack.enter_context(running(["worker"], env("a"), logs[0]))
            b = b_stack.enter_context(running(["worker"], env("b"), logs[1]))
            ticker.thread.start()

            def split() -> bool:
                got = [holding(p) for p in logs]
                if a.poll() is not None or b.poll() is not None:
                    raise AssertionError("a worker exited")
                if any(g is None for g in got):
                    return False
                (held_a, dec_a), (held_b, dec_b) = got  # type: ignore[misc]
                return bool(dec_a) and bool(dec_b) and not held_a & held_b and dec_a | dec_b == set(POOLS)

            wait_for(split, 240, "both workers deciding for disjoint sets of pools covering all", logs)
            orders = read_topic(
                s, "orders", timeout=180, alive=b,
                until=lambda r: {o["pool"] for o in r if o["source_node"].startswith("hot-")} >= set(POOLS),
            )  # fmt: skip
            by_pool = {o["pool"] for o in orders if o["source_node"].startswith("hot-")}
            assert by_pool == set(POOLS), f"orders only for {sorted(by_pool)}"
            for o in orders:
                assert o["source_node"] == f"hot-{o['pool']}" and o["target_node"] in (
                    f"cool-{o['pool']}", f"spare-{o['pool']}",
                ), o  # fmt: skip
            split_a, split_b = holding(logs[0]), holding(logs[1])
            assert split_a is not None and split_b is not None
            a_pools = split_a[0]
            ticker.stop.set()
            ticker.thread.join(30)
            assert ticker.error is None, ticker.error
        # Worker A is stopped. B takes every partition and rebuilds A's pools from the topic.
        assert a.returncode is not None

        def b_has_all() -> bool:
            got = holding(logs[1])
            if b.poll() is not None:
                raise AssertionError("worker B exited")
            return got is not None and got[1] == set(POOLS)

        wait_for(b_has_all, 240, "worker B deciding for every pool", logs)
        # Only the newly hot nodes report from now on; A's cool nodes are known to B from the topic.
        at = ticker.at
        for k in range(5):
            nodes, loads = tick(at + 5.0 * k, "hot2", spares=False)
            produce(s, "workload_usage", loads)
            produce(s, "node_usage", nodes)
            time.sleep(1.0)
        new = read_topic(
            s, "orders", timeout=180, alive=b,
            until=lambda r: {o["pool"] for o in r if o["source_node"].startswith("hot2-")} >= a_pools,
        )  # fmt: skip
    moved = {o["pool"]: o for o in new if o["source_node"].startswith("hot2-")}
    if not (a_pools and set(moved) >= a_pools):
        why = read_topic(s, "explanations", timeout=15, until=lambda r: False)
        hot2 = [
            (e.get("node_id"), e.get("decision"), e.get("reason"), e.get("message"))
            for e in why if "hot2" in str(e.get("node_id"))
        ]  # fmt: skip
        raise AssertionError(
            f"B ordered for {sorted(moved)}, A had {sorted(a_pools)}; B's crashes: {crash_reasons(logs[1])}; "
            f"explanations for the hot2 nodes: {hot2[-12:]}"
        )
    for pool in a_pools:
        assert moved[pool]["target_node"] in (f"cool-{pool}", f"spare-{pool}")
