"""A real executor on 127.0.0.1 (port 0) with real drivers: sim, process and function workloads.

Each test starts a node and its gRPC server in the test's own event loop and talks to it with
the project's client, over the network stack, like the CLI and the dispatcher do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agents.drivers.base import WorkloadSpec
from agents.executor import SERVICE_NAME, build_server, stop_server
from agents.executor_client import ExecutorCallError, ExecutorClient
from agents.node import Capacity, Node
from schemas import executor_pb2 as pb

PY = sys.executable


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, drivers=("sim", "process", "function"), **node_kw: Any) -> AsyncIterator[Any]:
    node = await Node.open("n1", list(drivers), tmp_path / "n1", **node_kw)
    server, port = await build_server(node, "127.0.0.1:0")
    await server.start()
    client = ExecutorClient(f"127.0.0.1:{port}", timeout_seconds=30)
    try:
        yield node, client
    finally:
        await client.close()
        await stop_server(server, 1.0)
        await node.close()


def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text("step,a\n0,20\n1,40\n2,60\n3,80\n")
    return path


async def http(url: str, body: Any = None, method: str = "POST") -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())

    def call() -> tuple[int, Any]:
        request = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    return await asyncio.to_thread(call)


async def until(predicate, what: str, attempts: int = 200) -> Any:
    """Poll ``predicate()`` (async) until it returns a truthy value; fail after ``attempts`` tries."""
    for _ in range(attempts):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    pytest.fail(f"never happened: {what}")


def test_health_is_serving(tmp_path):
    async def scenario() -> None:
        async with serving(tmp_path, drivers=("sim",)) as (_node, client):
            assert await client.check_health() == "SERVING"
            assert await client.check_health(SERVICE_NAME) == "SERVING"
            with pytest.raises(ExecutorCallError) as err:
                await client.check_health("no.such.Service")
            assert err.value.code.name == "NOT_FOUND"

    asyncio.run(scenario())


def test_sim_start_list_usage_stop(tmp_path):
    trace = trace_file(tmp_path)

    async def scenario() -> None:
        async with serving(tmp_path, drivers=("sim",)) as (node, client):
            spec = pb.WorkloadSpec(
                workload_id="s1",
                driver="sim",
                cpu_cores=2,
                memory_bytes=64 << 20,
                priority=10,
                app="shop",
                params={"trace": str(trace), "series": "a", "anchor_at": "1000", "step_seconds": "10"},
            )
            info = await client.start_workload_proto(spec)
            assert (info.spec.kind, info.state, info.spec.priority, info.spec.app) == ("vm", "running", 10, "shop")
            listed = await client.list_workloads()
            assert [(i.spec.workload_id, i.spec.driver, i.state) for i in listed] == [("s1", "sim", "running")]
            (usage,) = await client.get_usage(["s1"])
            # The node's own reading at the same instant is the trace value: a pure function of time.
            assert usage.cpu_cores_used == node.usage("s1", usage.at).cpu_cores_used
            assert usage.cpu_cores_used in (0.4, 0.8, 1.2, 1.6)
            assert usage.mem_used_bytes == 64 << 20
            assert [u.workload_id for u in await client.get_usage()] == ["s1"]
            stopped_at = await client.stop_workload("s1")
            assert stopped_at >= info.started_at
            assert await client.list_workloads() == []

    asyncio.run(scenario())


def test_process_usage_follows_a_busy_process_and_gets_its_state_dir(tmp_path):
    script = (
        "import os, pathlib; "
        "pathlib.Path(os.environ['PLBA_STATE_DIR'], 'hello').write_text(os.environ['PLBA_WORKLOAD_ID']); "
        "exec('while True: pass')"
    )

    async def scenario() -> None:
        async with serving(tmp_path, drivers=("process",)) as (_node, client):
            spec = pb.WorkloadSpec(
                workload_id="busy", driver="process", params={"command": f'{PY} -c "{script}"', "port": "none"}
            )
            info = await client.start_workload_proto(spec)
            assert (info.spec.kind, info.state, info.endpoint) == ("container", "running", "")
            state_dir = tmp_path / "n1" / "workloads" / "busy" / "state"
            assert state_dir.is_dir()
            hello = state_dir / "hello"

            async def greeted() -> bool:
                return hello.exists() and hello.read_text() == "busy"

            await until(greeted, "the process wrote into PLBA_STATE_DIR")

            async def busy() -> bool:
                (usage,) = await client.get_usage(["busy"])
                return usage.cpu_cores_used > 0 and usage.mem_used_bytes > 0

            await until(busy, "psutil sees the busy process use CPU")
            assert info.pid is not None and psutil.pid_exists(info.pid)
            await client.stop_workload("busy")
            assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == psutil.STATUS_ZOMBIE
            assert not (tmp_path / "n1" / "workloads" / "busy").exists()

    asyncio.run(scenario())


def test_usage_counts_the_children_of_a_process(tmp_path):
    child = "exec('while True: pass')"
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(600)"

    async def scenario() -> None:
        async with serving(tmp_path, drivers=("process",)) as (_node, client):
            spec = pb.WorkloadSpec(
                workload_id="tree",
                driver="process",
                params={"command": f"{PY} -c {json.dumps(parent)}", "port": "none"},
            )
            info = await client.start_workload_proto(spec)
            root = psutil.Process(info.pid)

            async def has_child() -> bool:
                return bool(root.children())

            await until(has_child, "the child process started")
            grandchild = root.children()[0]

            async def busy() -> bool:
                (usage,) = await client.get_usage(["tree"])
                return usage.cpu_cores_used > 0.05  # the sleeping parent alone uses ~0

            await until(busy, "the busy child's CPU counted in the workload's usage")
            await client.stop_workload("tree")
            assert not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE

    asyncio.run(scenario())


def test_the_default_process_is_the_counter_app(tmp_path):
    async def scenario() -> None:
        async with serving(tmp_path, drivers=("process",)) as (_node, client):
            info = await client.start_workload_proto(pb.WorkloadSpec(workload_id="c1", driver="process"))
            host, port = info.endpoint.split(":")
            assert host == "127.0.0.1" and int(port) > 0
            status, state = await http(f"http://{info.endpoint}/state", method="GET")
            assert status == 200
            assert state["workload_id"] == "c1" and state["pid"] == info.pid
            assert state["state_dir"] == str(tmp_path / "n1" / "workloads" / "c1" / "state")
            status, incr = await http(f"http://{info.endpoint}/incr", b"")
            assert status == 200 and incr["count"] >= state["count"] + 1
            saved = json.loads((tmp_path / "n1" / "workloads" / "c1" / "state" / "counter.json").read_text())
            assert saved["count"] >= incr["count"]
            await client.stop_workload("c1")

    asyncio.run(scenario())


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path):
    script = (
        "import os, pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(os.environ['PLBA_STATE_DIR'], 'deaf').touch(); time.sleep(600)"
    )

    async def scenario() -> None:
        async with serving(tmp_path, drivers=("process",)) as (_node, client):
            params = {"command": f'{PY} -c "{script}"', "port": "none", "stop_timeout_seconds": "0.5"}
            info = await client.start_workload_proto(
                pb.WorkloadSpec(workload_id="stubborn", driver="process", params=params)
            )
            deaf = tmp_path / "n1" / "workloads" / "stubborn" / "state" / "deaf"

            async def ignoring() -> bool:
                return deaf.exists()

            await until(ignoring, "the process ignores SIGTERM")
            await client.stop_workload("stubborn")
            assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == psutil.STATUS_ZOMBIE

    asyncio.run(scenario())


def test_process_start_failures_are_precise(tmp_path):
    async def scenario() -> None:
        async with serving(tmp_path, drivers=("process",)) as (_node, client):
            with pytest.raises(ExecutorCallError) as err:
                # wait_port: the start waits for a port the process never opens, so it sees the exit.
                command = f"{PY} -c \"import sys; print('no config'); sys.exit(3)\""
                params = {"command": command, "wait_port": "true"}
                await client.start_workload_proto(pb.WorkloadSpec(workload_id="dies", driver="process", params=params))
            assert err.value.code.name == "FAILED_PRECONDITION"
            assert "workload 'dies' exited during start with code 3: no config" in err.value.details
            with pytest.raises(ExecutorCallError) as err:
                params = {"command": "/nonexistent/bin/thing --flag"}
                await client.start_workload_proto(pb.WorkloadSpec(workload_id="nope", driver="process", params=params))
            assert err.value.code.name == "INVALID_ARGUMENT"
            assert "param command: cannot run '/nonexistent/bin/thing'" in err.value.details
            assert await client.list_workloads() == []
            assert not (tmp_path / "n1" / "workloads" / "dies").exists()

    asyncio.run(scenario())


def test_a_restarted_node_adopts_its_kept_processes(tmp_path):
    async def scenario() -> None:
        node = await Node.open("n1", ["process"], tmp_path / "n1")
        info = await node.start_workload(WorkloadSpec("keep", "container", "process"))
        await node.close(stop_workloads=False)
        assert psutil.pid_exists(info.pid)
        async with serving(tmp_path, drivers=("process",)) as (_node, client):
            (adopted,) = await client.list_workloads()
            assert (adopted.spec.workload_id, adopted.state, adopted.pid) == ("keep", "running", info.pid)
            status, _ = await http(f"http://{adopted.endpoint}/", method="GET")
            assert status == 200
            (usage,) = await client.get_usage(["keep"])
            assert usage.mem_used_bytes > 0
        assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == psutil.STATUS_ZOMBIE

    asyncio.run(scenario())


def test_function_invocations_over_http_and_their_usage(tmp_path):
    async def scenario() -> None:
        async with serving(tmp_path, drivers=("function",)) as (_node, client):
            spec = pb.WorkloadSpec(workload_id="f1", driver="function", params={"workers": "2"})
            info = await client.start_workload_proto(spec)
            assert info.spec.kind == "function" and info.endpoint.startswith("http://127.0.0.1:")
            pids = set()
            for i in range(6):
                status, reply = await http(info.endpoint, {"n": 1000, "echo": i})
                assert status == 200 and reply["echo"] == i and reply["sum"] == sum(k * k for k in range(1000))
                pids.add(reply["pid"])
            status, health = await http(info.endpoint + "healthz", method="GET")
            assert (status, health["workers"]) == (200, 2)
            assert pids <= {p.pid for p in psutil.Process().children(recursive=True)}
            (usage,) = await client.get_usage(["f1"])
            assert usage.extra["invocations_total"] == 6 and usage.extra["errors_total"] == 0
            assert usage.extra["workers"] == 2 and usage.mem_used_bytes > 0
            status, reply = await http(info.endpoint, b"{not json")
            assert status == 400 and "body is not JSON" in reply["error"]
            await client.stop_workload("f1")
            assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)

    asyncio.run(scenario())


def test_function_handler_errors_and_bad_handlers(tmp_path):
    async def scenario() -> None:
        async with serving(tmp_path, drivers=("function",)) as (_node, client):
            spec = pb.WorkloadSpec(
                workload_id="f2", driver="function", params={"handler": "json:loads", "workers": "1"}
            )
            info = await client.start_workload_proto(spec)
            status, reply = await http(info.endpoint, {"a": 1})  # json.loads(dict) raises TypeError
            assert status == 500 and reply["error"].startswith("TypeError:")
            status, reply = await http(info.endpoint, b'"[1, 2]"')
            assert (status, reply) == (200, [1, 2])
            (usage,) = await client.get_usage(["f2"])
            assert (usage.extra["invocations_total"], usage.extra["errors_total"]) == (2, 1)
            with pytest.raises(ExecutorCallError) as err:
                bad = pb.WorkloadSpec(workload_id="f3", driver="function", params={"handler": "no_such_module:run"})
                await client.start_workload_proto(bad)
            assert err.value.code.name == "INVALID_ARGUMENT"
            assert "param handler: cannot load no_such_module:run: ModuleNotFoundError" in err.value.details

    asyncio.run(scenario())


def test_capacity_admission_over_the_wire(tmp_path):
    trace = trace_file(tmp_path)

    async def scenario() -> None:
        capacity = Capacity.configure(mem_bytes=100 << 20)
        async with serving(tmp_path, drivers=("sim",), capacity=capacity) as (_node, client):
            params = {"trace": str(trace), "series": "a"}
            await client.start_workload_proto(
                pb.WorkloadSpec(workload_id="a", driver="sim", memory_bytes=80 << 20, params=params)
            )
            with pytest.raises(ExecutorCallError) as err:
                await client.start_workload_proto(
                    pb.WorkloadSpec(workload_id="b", driver="sim", memory_bytes=40 << 20, params=params)
                )
            assert err.value.code.name == "RESOURCE_EXHAUSTED"
            assert err.value.details == "node n1 has 20Mi of 100Mi memory free; workload 'b' needs 40Mi"

    asyncio.run(scenario())
