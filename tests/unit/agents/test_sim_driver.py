"""The sim driver reproduces its trace exactly, as a pure function of time, across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.drivers.base import AlreadyExists, DriverContext, InvalidSpec, UnknownWorkload, WorkloadSpec
from agents.drivers.sim import SimDriver
from agents.drivers.trace_series import load_series
from schemas.settings import Settings

TRACES = Settings.from_env().traces_dir
T0 = 1_700_000_000.0
VALUES = [10.0, 25.0, 50.0, 75.0, 100.0, 130.0, -5.0]  # out-of-range percents are clipped


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    rows = "\n".join(f"{i},{v},{100 - i * 10}" for i, v in enumerate(VALUES))
    path = tmp_path / "trace.csv"
    path.write_text(f"step,vm1,mem1\n{rows}\n")
    return path


def driver(tmp_path: Path, clock: float = T0) -> SimDriver:
    return SimDriver(DriverContext("n1", tmp_path / "state", TRACES), clock=lambda: clock)


def spec(trace: Path | str, **params: str) -> WorkloadSpec:
    return WorkloadSpec(
        "s1", "vm", "sim", memory_bytes=1000, cpu_cores=2.0, params={"trace": str(trace), "series": "vm1", **params}
    )


def test_usage_reproduces_each_step_exactly(tmp_path, trace):
    sim = driver(tmp_path)
    info = asyncio.run(sim.start(spec(trace, speed="60")))  # 300-s steps, 5 wall seconds each
    assert (info.state, info.started_at) == ("running", T0)
    expected = [min(max(v, 0.0), 100.0) / 100 * 2.0 for v in VALUES]
    assert [sim.usage("s1", T0 + k * 5).cpu_cores_used for k in range(len(VALUES))] == expected
    assert sim.usage("s1", T0 + 5 * 2 + 4.99).cpu_cores_used == expected[2]  # held within a step
    assert sim.usage("s1", T0 + 5 * len(VALUES)).cpu_cores_used == expected[0]  # and repeats
    usage = sim.usage("s1", T0 + 7)
    assert (usage.workload_id, usage.at, usage.mem_used_bytes, usage.io_bytes_per_second) == ("s1", T0 + 7, 1000, 0.0)


def test_usage_is_a_pure_function_of_time(tmp_path, trace):
    sim = driver(tmp_path)
    asyncio.run(sim.start(spec(trace, speed="7.5")))
    instants = [T0 + 3.3 * i for i in range(40)]
    first = [sim.usage("s1", t) for t in instants]
    second = [sim.usage("s1", t) for t in reversed(instants)]
    assert first == list(reversed(second))


def test_offset_and_anchor_shift_the_trace(tmp_path, trace):
    sim = driver(tmp_path)
    asyncio.run(sim.start(spec(trace, offset_seconds="600", anchor_at=str(T0 - 300))))
    # trace time at T0 = 600 + 300 = 900 s -> step 3 (75 %)
    assert sim.usage("s1", T0).cpu_cores_used == 1.5
    assert sim.model("s1").trace_seconds(T0 + 10) == 910.0


def test_memory_and_io_from_params(tmp_path, trace):
    sim = driver(tmp_path)
    asyncio.run(sim.start(spec(trace, mem_used="500", io_bytes_per_second="1K")))
    usage = sim.usage("s1", T0)
    assert (usage.mem_used_bytes, usage.io_bytes_per_second) == (500, 1024.0)


def test_memory_following_a_series(tmp_path, trace):
    sim = driver(tmp_path)
    asyncio.run(sim.start(spec(trace, mem_series="mem1")))
    assert [sim.usage("s1", T0 + k * 300).mem_used_bytes for k in range(3)] == [1000, 900, 800]


@pytest.mark.skipif(not (TRACES / "azure_v1_100vms").is_dir(), reason=f"no shared traces in {TRACES}")
def test_a_shared_trace_by_name(tmp_path):
    from streams.traces import load_trace

    sim = driver(tmp_path)
    asyncio.run(sim.start(spec("azure", series="1633748", speed="300")))  # one 5-min step per second
    ref = load_trace("azure", TRACES)
    column = ref.values[:, ref.series_names.index("1633748")]
    assert [sim.usage("s1", T0 + k).cpu_cores_used for k in range(50)] == [v / 100 * 2.0 for v in column[:50]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sereis": "x"}, "unknown param 'sereis' for driver sim"),
        ({"speed": "0"}, "param speed: must be positive"),
        ({"speed": "fast"}, "param speed: 'fast' is not a number"),
        ({"offset_seconds": "-1"}, "param offset_seconds: must be at least 0"),
        ({"mem_used": "lots"}, "param mem_used: bad size 'lots'"),
        ({"mem_used": "2000"}, "more than the workload's memory"),
        ({"mem_trace": "x"}, "param mem_trace needs mem_series"),
        ({"series": "nope"}, "no series 'nope'"),
    ],
)
def test_bad_params_are_refused(tmp_path, trace, params, message):
    with pytest.raises(InvalidSpec) as err:
        asyncio.run(driver(tmp_path).start(spec(trace, **params)))
    assert message in str(err.value)


def test_trace_and_series_are_required(tmp_path):
    with pytest.raises(InvalidSpec, match="needs params trace"):
        asyncio.run(driver(tmp_path).start(WorkloadSpec("s1", "vm", "sim")))


def test_any_kind_lifecycle_and_errors(tmp_path, trace):
    sim = driver(tmp_path)
    assert all(sim.accepts(k) for k in ("vm", "container", "function"))
    asyncio.run(sim.start(spec(trace)))
    with pytest.raises(AlreadyExists):
        asyncio.run(sim.start(spec(trace)))
    assert [i.spec.workload_id for i in sim.list()] == ["s1"]
    assert (tmp_path / "state" / "workloads" / "s1" / "workload.json").is_file()
    asyncio.run(sim.stop("s1"))
    assert sim.list() == [] and not (tmp_path / "state" / "workloads" / "s1").exists()
    with pytest.raises(UnknownWorkload):
        sim.usage("s1", T0)
    with pytest.raises(UnknownWorkload):
        asyncio.run(sim.stop("s1"))


def test_a_restarted_node_resumes_the_same_usage(tmp_path, trace):
    before = driver(tmp_path)
    asyncio.run(before.start(spec(trace, speed="60")))
    expected = [before.usage("s1", T0 + k).cpu_cores_used for k in range(0, 40, 3)]
    after = driver(tmp_path, clock=T0 + 1000)  # a new process, later
    adopted = asyncio.run(after.recover())
    assert [(i.spec.workload_id, i.started_at) for i in adopted] == [("s1", T0)]
    assert [after.usage("s1", T0 + k).cpu_cores_used for k in range(0, 40, 3)] == expected


def test_series_are_cached(tmp_path, trace):
    assert load_series(str(trace), "vm1") is load_series(str(trace), "vm1")
