"""A stateful process moves between two real executors: its state arrives byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import urllib.request
from typing import Any

import psutil

from agents.drivers.base import WorkloadSpec
from agents.drivers.counter_app import BALLAST_FILE, ballast_block
from tests.integration.migrate_helpers import migrate, order, two_nodes, until

STATE_BYTES = 10 * 1024 * 1024


def counter_spec(workload_id: str = "p1", state_bytes: int = STATE_BYTES, **params: str) -> WorkloadSpec:
    command = f"{sys.executable} -m agents.drivers.counter_app --tick 0.05 --state-bytes {state_bytes}"
    return WorkloadSpec(
        workload_id, "container", "process", memory_bytes=64 << 20, params={"command": command, **params}
    )


def http_get(endpoint: str, path: str = "/state") -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{endpoint}{path}", timeout=30) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


def expected_ballast_sha(size: int) -> str:
    digest = hashlib.sha256()
    block = 1 << 16
    for i in range((size + block - 1) // block):
        digest.update(ballast_block(i)[: min(block, size - i * block)])
    return digest.hexdigest()


def test_state_arrives_byte_for_byte_with_downtime_reported(tmp_path):
    async def scenario() -> None:
        async with two_nodes(tmp_path, ["process"]) as (a, b):
            info = await a.client.start_workload(counter_spec())
            before = await asyncio.to_thread(http_get, info.endpoint)
            assert before["ballast_sha256"] == expected_ballast_sha(STATE_BYTES)
            # A file of the workload's own, random: it must arrive with the same digest.
            extra = os.urandom(3 * 1024 * 1024 + 17)
            state = a.node.driver("process").state_dir("p1")  # type: ignore[attr-defined]
            (state / "sub").mkdir()
            (state / "sub" / "data.bin").write_bytes(extra)
            steps = await migrate(a.stub, order("p1", a, b))
            states = [s.state for s in steps]
            assert states[:3] == ["accepted", "preparing", "transferring"], states
            assert states[-2:] == ["switching", "completed"] and set(states[2:-2]) == {"transferring"}, states
            done = steps[-1]
            assert done.state == "completed", done
            assert done.driver == "process" and done.method == "snapshot"
            assert 0 < done.downtime_seconds < 5, done.downtime_seconds
            assert done.transferred_bytes >= STATE_BYTES + len(extra)
            assert done.workload_endpoint and done.workload_endpoint != info.endpoint
            # Source: process gone, files gone, not listed.
            assert await a.client.list_workloads() == []
            await until(lambda: not psutil.pid_exists(info.pid or 0) or psutil.Process(info.pid).status() == "zombie",
                        "the source process exits")  # fmt: skip
            assert not (tmp_path / "na" / "workloads" / "p1").exists()
            # Target: running, same ballast, the count went on, the extra file identical.
            (moved,) = await b.client.list_workloads()
            assert moved.state == "running" and moved.endpoint == done.workload_endpoint
            after = await asyncio.to_thread(http_get, moved.endpoint)
            assert after["ballast_sha256"] == before["ballast_sha256"]
            assert after["count"] >= before["count"] and after["pid"] != before["pid"]
            target_state = b.node.driver("process").state_dir("p1")  # type: ignore[attr-defined]
            assert (target_state / "sub" / "data.bin").read_bytes() == extra
            assert (target_state / BALLAST_FILE).stat().st_size == STATE_BYTES
            assert not (tmp_path / "nb" / "workloads" / "p1" / "state.incoming").exists()

    asyncio.run(scenario())


def test_a_redelivered_order_replays_its_outcome_and_never_moves_twice(tmp_path):
    async def scenario() -> None:
        async with two_nodes(tmp_path, ["process"]) as (a, b):
            await a.client.start_workload(counter_spec(state_bytes=0))
            o = order("p1", a, b)
            first = await migrate(a.stub, o)
            again = await migrate(a.stub, o)
            assert first[-1].state == "completed"
            assert [s.state for s in again] == ["completed"]
            assert again[-1].workload_endpoint == first[-1].workload_endpoint
            assert len(await b.client.list_workloads()) == 1 and await a.client.list_workloads() == []
            # A second order for the same workload at the old source: it is not there any more.
            other = await migrate(a.stub, order("p1", a, b))
            assert other[-1].state == "rejected" and other[-1].error.code == "unknown_workload"

    asyncio.run(scenario())
