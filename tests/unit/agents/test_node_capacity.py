"""The node: capacity slices, labels, driver choice, admission, one state directory per node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest

from agents.drivers import register_driver
from agents.drivers.base import (
    AlreadyExists,
    Driver,
    DriverContext,
    DriverError,
    DriverUnavailable,
    InsufficientCapacity,
    InvalidSpec,
    UnknownWorkload,
    Usage,
    WorkloadInfo,
    WorkloadSpec,
)
from agents.node import Capacity, Node, NodeConfigError, advertised_endpoint, parse_driver_list, parse_labels

MIB = 1024 * 1024


class FakeDriver(Driver):
    """An in-memory runtime: start records, usage is 0.5 core; ``broken`` ids fail usage."""

    name = "fake"
    kind = "container"

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self.infos: dict[str, WorkloadInfo] = {}
        self.broken: set[str] = set()
        self.gate: asyncio.Event | None = None

    def version(self) -> str:
        return "0.1"

    async def start(self, spec: WorkloadSpec) -> WorkloadInfo:
        if self.gate is not None:
            await self.gate.wait()
        self.infos[spec.workload_id] = WorkloadInfo(spec, "running", 1.0)
        return self.infos[spec.workload_id]

    async def stop(self, workload_id: str) -> None:
        if self.infos.pop(workload_id, None) is None:
            raise UnknownWorkload(workload_id)

    def list(self) -> list[WorkloadInfo]:
        return list(self.infos.values())

    def usage(self, workload_id: str, now: float) -> Usage:
        if workload_id in self.broken:
            raise DriverError("reading failed")
        return Usage(workload_id, now, 0.5, 10, 0.0)


@pytest.fixture(autouse=True)
def fake_driver(monkeypatch):
    import agents.drivers

    monkeypatch.setattr(agents.drivers, "_FACTORIES", dict(agents.drivers._FACTORIES))
    register_driver("fake", FakeDriver)


def spec(wid: str, memory: int = 100 * MIB, kind: str = "container", driver: str = "fake") -> WorkloadSpec:
    return WorkloadSpec(wid, kind, driver, memory_bytes=memory)


async def open_node(tmp_path: Path, memory: int | None = 300 * MIB, drivers=("fake",)) -> Node:
    return await Node.open("n1", list(drivers), tmp_path / "n1", capacity=Capacity.configure(mem_bytes=memory))


def test_capacity_defaults_to_the_host():
    cap = Capacity.configure()
    assert cap.sliced is False
    assert cap.cpu_cores == psutil.cpu_count() and cap.mem_bytes == psutil.virtual_memory().total
    assert cap.to_dict() == {"cpu_cores": cap.cpu_cores, "mem_bytes": cap.mem_bytes, "io_bytes_per_second": 1e9}


def test_a_slice_of_the_host():
    cap = Capacity.configure(cpu_cores=0.5, mem_bytes=512 * MIB, io_bytes_per_second=1e6)
    assert (cap.cpu_cores, cap.mem_bytes, cap.io_bytes_per_second, cap.sliced) == (0.5, 512 * MIB, 1e6, True)
    partial = Capacity.configure(mem_bytes=512 * MIB)
    assert partial.sliced and partial.cpu_cores == psutil.cpu_count()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"cpu_cores": 10_000}, "capacity cores must be in (0,"),
        ({"cpu_cores": -1}, "capacity cores must be in (0,"),
        ({"mem_bytes": 2**60}, "at most the host's"),
        ({"mem_bytes": 0}, "capacity memory must be positive"),
        ({"io_bytes_per_second": 0}, "capacity io must be positive"),
    ],
)
def test_capacity_beyond_the_host_is_refused(kw, message):
    with pytest.raises(NodeConfigError) as err:
        Capacity.configure(**kw)
    assert message in str(err.value)


def test_labels():
    assert parse_labels("zone=a, pool=p1,team/x=y") == {"zone": "a", "pool": "p1", "team/x": "y"}
    assert parse_labels("") == {}
    for bad, message in [("zone", "write key=value"), ("=a", "write key=value"), ("a=1,a=2", "given twice")]:
        with pytest.raises(NodeConfigError, match=message):
            parse_labels(bad)


def test_driver_lists():
    assert parse_driver_list("sim, process,sim") == ["sim", "process"]
    with pytest.raises(NodeConfigError, match="unknown driver 'docker'"):
        parse_driver_list("sim,docker")
    with pytest.raises(NodeConfigError, match="no drivers given"):
        parse_driver_list(" , ")


def test_advertised_endpoint():
    assert advertised_endpoint("127.0.0.1", 5) == "127.0.0.1:5"
    assert advertised_endpoint("::1", 5) == "[::1]:5"
    assert advertised_endpoint("0.0.0.0", 5).endswith(":5") and not advertised_endpoint("0.0.0.0", 5).startswith("0.")


def test_admission_checks_memory_against_the_capacity(tmp_path):
    async def scenario() -> None:
        node = await open_node(tmp_path)
        await node.start_workload(spec("a", 200 * MIB))
        with pytest.raises(InsufficientCapacity) as err:
            await node.start_workload(spec("b", 200 * MIB))
        assert str(err.value) == "node n1 has 100Mi of 300Mi memory free; workload 'b' needs 200Mi"
        await node.start_workload(spec("b", 100 * MIB))
        await node.stop_workload("a")
        await node.start_workload(spec("c", 200 * MIB))
        assert sorted(i.spec.workload_id for i in node.list_workloads()) == ["b", "c"]
        await node.close()

    asyncio.run(scenario())


def test_concurrent_starts_see_each_others_reservation(tmp_path):
    async def scenario() -> None:
        node = await open_node(tmp_path)
        fake = node.drivers["fake"]
        assert isinstance(fake, FakeDriver)
        fake.gate = asyncio.Event()
        first = asyncio.create_task(node.start_workload(spec("a", 200 * MIB)))
        await asyncio.sleep(0)
        with pytest.raises(AlreadyExists):
            await node.start_workload(spec("a", 10 * MIB))
        with pytest.raises(InsufficientCapacity):
            await node.start_workload(spec("b", 200 * MIB))
        fake.gate.set()
        await first
        await node.close()

    asyncio.run(scenario())


def test_driver_and_kind_checks(tmp_path):
    async def scenario() -> None:
        node = await open_node(tmp_path, drivers=("fake", "sim"))
        with pytest.raises(
            DriverUnavailable, match=r"driver 'process' is not enabled on node n1 \(enabled: fake, sim\)"
        ):
            await node.start_workload(spec("a", driver="process"))
        with pytest.raises(InvalidSpec, match="unknown driver 'docker'"):
            await node.start_workload(spec("a", driver="docker"))
        with pytest.raises(InvalidSpec, match="driver fake hosts kind container, not vm"):
            await node.start_workload(spec("a", kind="vm"))
        with pytest.raises(UnknownWorkload, match="no workload 'zz' on node n1"):
            await node.stop_workload("zz")
        await node.close()

    asyncio.run(scenario())


def test_ids_are_unique_across_drivers(tmp_path):
    async def scenario() -> None:
        node = await open_node(tmp_path, drivers=("fake", "sim"))
        await node.start_workload(spec("a"))
        with pytest.raises(AlreadyExists, match="workload 'a' already runs on node n1"):
            await node.start_workload(WorkloadSpec("a", "vm", "sim", params={"trace": "x", "series": "y"}))
        await node.close()

    asyncio.run(scenario())


def test_usage_all_skips_a_failing_reading(tmp_path):
    async def scenario() -> None:
        node = await open_node(tmp_path)
        for wid in ("a", "b"):
            await node.start_workload(spec(wid))
        fake = node.drivers["fake"]
        assert isinstance(fake, FakeDriver)
        fake.broken.add("a")
        assert [u.workload_id for u in node.usage_all(5.0)] == ["b"]
        assert node.usage("b", 5.0).cpu_cores_used == 0.5
        await node.close()

    asyncio.run(scenario())


def test_close_stops_workloads_unless_kept(tmp_path):
    async def scenario() -> tuple[int, int]:
        node = await open_node(tmp_path)
        await node.start_workload(spec("a"))
        fake = node.drivers["fake"]
        await node.close(stop_workloads=False)
        kept = len(fake.list())
        node = await open_node(tmp_path)
        await node.start_workload(spec("a"))
        fake = node.drivers["fake"]
        await node.close()
        return kept, len(fake.list())

    assert asyncio.run(scenario()) == (1, 0)


def test_one_process_per_state_directory(tmp_path):
    async def scenario() -> None:
        node = await open_node(tmp_path)
        with pytest.raises(NodeConfigError, match=r"in use by node n1 \(pid \d+\)"):
            await open_node(tmp_path)
        await node.close()
        again = await open_node(tmp_path)  # released on close
        await again.close()

    asyncio.run(scenario())


def test_bad_node_id(tmp_path):
    with pytest.raises(NodeConfigError, match="node id 'a b'"):
        Node("a b", {}, state_dir=tmp_path)
