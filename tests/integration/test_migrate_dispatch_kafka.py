"""Through the real broker: the same order delivered twice migrates once.

Two `plba node` processes publish their telemetry (with their executor endpoints) to a private
topic prefix; `plba dispatcher` consumes the orders topic. The same order is produced twice: the
workload moves once, the migrations topic carries one lifecycle and the placements topic the new
endpoint. A second dispatcher (another consumer group, so a book that never saw the order) reads
the order again: the source executor replays the outcome from its journal, nothing moves again.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import pytest

from agents.drivers.base import WorkloadSpec
from agents.executor_client import ExecutorClient
from plba.faults.nodes import kill_leftovers, workload_processes
from tests.integration.kafka_io import produce, read_topic, running, settings_env
from tests.integration.migrate_helpers import NodeProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def order(workload_id: str, order_id: str, deadline_seconds: float = 180.0) -> dict[str, Any]:
    now = time.time()
    return {
        "schema_version": 1, "order_id": order_id, "workload_id": workload_id, "kind": "container",
        "source_node": "na", "target_node": "nb", "method": "snapshot",
        "reason": {"code": "predicted_overload", "message": "test"}, "issued_at": now,
        "deadline_at": now + deadline_seconds, "dry_run": False, "mode": "enforce", "pool": "p1",
    }  # fmt: skip


def of(order_id: str) -> Any:
    return lambda recs: [r for r in recs if r.get("order_id") == order_id]


def test_the_same_order_twice_migrates_once(kafka_settings, tmp_path):
    s = kafka_settings
    env = settings_env(s)
    telemetry = ("--interval", "1", "--labels", "pool=p1")
    nodes = [NodeProcess(n, tmp_path / "state", "process", env=env, extra=telemetry) for n in ("na", "nb")]
    try:
        for node in nodes:
            node.start()

        async def setup() -> str:
            await asyncio.gather(*(n.ready() for n in nodes))
            command = f"{sys.executable} -m agents.drivers.counter_app --tick 0.1"
            spec = WorkloadSpec("p1", "container", "process", memory_bytes=32 << 20, params={"command": command})
            async with ExecutorClient(nodes[0].endpoint, timeout_seconds=60) as client:
                return (await client.start_workload(spec)).endpoint

        old_endpoint = asyncio.run(setup())
        with running(["dispatcher"], env, tmp_path / "dispatcher.log") as dispatcher:
            # Ready once an order for a missing workload is refused by the executor itself (the
            # dispatcher then knows the nodes' endpoints from their telemetry).
            deadline = time.monotonic() + 120
            while True:
                probe = f"probe-{uuid.uuid4().hex[:8]}"
                produce(s, "orders", [(b"ghost", order("ghost", probe))])
                got = read_topic(s, "migrations", until=lambda r, p=probe: bool(of(p)(r)), timeout=20, alive=dispatcher)
                codes = [r.get("error", {}).get("code") for r in of(probe)(got)]
                if "unknown_workload" in codes:
                    break
                assert time.monotonic() < deadline, (codes, (tmp_path / "dispatcher.log").read_text()[-3000:])
            oid = f"o-{uuid.uuid4().hex[:10]}"
            the_order = order("p1", oid)
            produce(s, "orders", [(b"p1", the_order), (b"p1", the_order)])
            recs = read_topic(s, "migrations", until=lambda r: any(x["state"] == "completed" for x in of(oid)(r)),
                              timeout=90, alive=dispatcher)  # fmt: skip
            time.sleep(3)  # room for a second execution, were there one
            recs = of(oid)(read_topic(s, "migrations", until=lambda r: False, timeout=5))
        log = (tmp_path / "dispatcher.log").read_text()
        states = [r["state"] for r in recs]
        assert states.count("accepted") == 1 and states.count("completed") == 1, (states, log[-3000:])
        done = next(r for r in recs if r["state"] == "completed")
        assert done["downtime_seconds"] is not None and done["transferred_bytes"] > 0
        placements = read_topic(s, "placements", until=lambda r: any(p.get("order_id") == oid for p in r), timeout=30)
        (placed,) = [p for p in placements if p.get("order_id") == oid]
        assert placed["node_id"] == "nb" and placed["endpoint"] and placed["endpoint"] != old_endpoint

        # A dispatcher with no memory of the order (another group) gets it again: replayed, not rerun.
        again_env = {**env, "PLBA_WORKER_ID": f"{s.topic_prefix}other"}
        with running(["dispatcher"], again_env, tmp_path / "dispatcher2.log") as second:
            recs2 = read_topic(s, "migrations", until=lambda r: sum(x["state"] == "completed" for x in of(oid)(r)) >= 2,
                               timeout=90, alive=second)  # fmt: skip
        states2 = [r["state"] for r in of(oid)(recs2)]
        assert states2.count("completed") == 2 and states2.count("accepted") == 1, states2

        async def check() -> None:
            async with ExecutorClient(nodes[0].endpoint) as a, ExecutorClient(nodes[1].endpoint) as b:
                assert await a.list_workloads() == []
                assert [w.spec.workload_id for w in await b.list_workloads()] == ["p1"]

        asyncio.run(check())
        assert len(workload_processes(tmp_path)) == 1
    finally:
        for node in nodes:
            node.stop()
        kill_leftovers(tmp_path)
