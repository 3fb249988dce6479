"""A function moves while a client invokes it throughout: not one invocation fails."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request

from agents.drivers.base import WorkloadSpec
from agents.function_router import FunctionRouter
from tests.integration.migrate_helpers import migrate, order, two_nodes, until


def test_a_function_keeps_answering_during_its_move(tmp_path):
    results: list[tuple[int, object]] = []
    errors: list[str] = []
    stop = threading.Event()
    placements: dict[str, str] = {}

    def client(router: FunctionRouter) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                results.append(router.invoke({"n": 2000, "echo": i}))
            except Exception as exc:
                errors.append(repr(exc))

    async def scenario() -> None:
        async with two_nodes(tmp_path, ["function"]) as (a, b):
            spec = WorkloadSpec("f1", "function", "function", params={"workers": "2", "drain_seconds": "1"})
            info = await a.client.start_workload(spec)
            router = FunctionRouter("f1", info.endpoint, resolve=placements.get, retry_seconds=10)
            worker = threading.Thread(target=client, args=(router,), daemon=True)
            worker.start()
            await until(lambda: len(results) >= 20, "the client gets answers before the move")
            steps = await migrate(a.stub, order("f1", a, b, kind="function", method="reroute"))
            done = steps[-1]
            assert done.state == "completed", done
            assert done.downtime_seconds == 0.0 and done.method == "reroute"
            new_endpoint = done.workload_endpoint
            assert new_endpoint and new_endpoint != info.endpoint
            placements["f1"] = new_endpoint  # what the dispatcher publishes on completion
            # A plain client of the old endpoint is forwarded while it drains.
            status, moved_to = await asyncio.to_thread(_post, info.endpoint)
            assert (status, moved_to) == (200, new_endpoint)
            served_before = len(results)
            # After the drain the old endpoint is closed; the client goes on at the new one.

            async def old_closed() -> bool:
                return await asyncio.to_thread(_refused, info.endpoint)

            await until(old_closed, "the old endpoint closes after its drain", timeout=15)
            await until(lambda: len(results) >= served_before + 30, "answers after the old endpoint closed")
            stop.set()
            await asyncio.to_thread(worker.join, 30)
            assert router.endpoint == new_endpoint and router.moves_followed == 1
            assert await a.client.list_workloads() == []
            (moved,) = await b.client.list_workloads()
            assert moved.endpoint == new_endpoint and moved.state == "running"
            (usage,) = await b.client.get_usage(["f1"])
            assert usage.extra["invocations_total"] > 0

    asyncio.run(scenario())
    assert errors == [], errors[:5]
    assert results and all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:5]
    pids = {body["pid"] for _, body in results}  # type: ignore[index]
    assert len(pids) >= 2  # served by the source's workers and by the target's


def _post(url: str) -> tuple[int, str | None]:
    with urllib.request.urlopen(urllib.request.Request(url, b"{}", method="POST"), timeout=10) as reply:
        return reply.status, reply.headers["X-PLBA-Moved-To"]


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(url, b"{}", method="POST"), timeout=5).close()
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    except ConnectionError:
        return True
    return False


def test_a_failed_move_leaves_the_function_serving_at_the_source(tmp_path):
    async def scenario() -> None:
        async with two_nodes(tmp_path, ["function"]) as (a, b):
            info = await a.client.start_workload(WorkloadSpec("f1", "function", "function", params={"workers": "1"}))
            # The target already runs a workload of that id: it refuses to prepare.
            bad = order("f1", a, b, kind="function", method="reroute", deadline_seconds=60)
            await b.client.start_workload(WorkloadSpec("f1", "function", "function", params={"workers": "1"}))
            steps = await migrate(a.stub, bad)
            assert steps[-1].state == "rejected" and steps[-1].error.code == "target_has_workload"
            assert [w.spec.workload_id for w in await a.client.list_workloads()] == ["f1"]
            assert await asyncio.to_thread(_post, info.endpoint) == (200, None)

    asyncio.run(scenario())
