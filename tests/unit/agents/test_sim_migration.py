"""The sim driver's modelled migrations: the shared model's figures, compressed, capped, continuous."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.drivers.base import DriverContext, IncomingPlan, InvalidSpec, WorkloadSpec
from agents.drivers.sim import SimDriver
from schemas.migration_model import MigrationModel

T0 = 1_700_000_000.0
GIB = 1 << 30


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("step,a\n" + "\n".join(f"{i},{(i * 7) % 100}" for i in range(50)) + "\n")
    return path


def sim(tmp_path: Path, name: str) -> SimDriver:
    return SimDriver(DriverContext(name, tmp_path / name), clock=lambda: T0)


def spec(trace: Path, **params: str) -> WorkloadSpec:
    return WorkloadSpec("s1", "vm", "sim", memory_bytes=4 * GIB, params={"trace": str(trace), "series": "a", **params})


class Move:
    def __init__(self) -> None:
        self.order_id = "o1"
        self.incoming = IncomingPlan()
        self.deadline_at = T0 + 600
        self.ratios: list[float] = []
        self.points: list[str] = []

    async def send_files(self, root: Path, *, changed_only: bool = False) -> int:
        raise AssertionError("a sim moves no files")

    async def progress(self, ratio: float, transferred_bytes: int, message: str = "") -> None:
        self.ratios.append(ratio)

    def checkpoint(self, point: str) -> None:
        self.points.append(point)


@pytest.mark.parametrize(("speed", "cap"), [("1", "3"), ("100", "3"), ("100000", "3"), ("10", "0.5")])
def test_the_plan_is_the_shared_model_compressed_and_capped(tmp_path, trace, speed, cap):
    driver = sim(tmp_path, "a")
    asyncio.run(driver.start(spec(trace, speed=speed, migration_max_seconds=cap)))
    seconds, figures = driver.migration_plan("s1", T0)
    estimate = MigrationModel().estimate("simulated", 4 * GIB)
    scale = min(1 / float(speed), float(cap) / estimate.duration_seconds)
    assert seconds == pytest.approx(estimate.duration_seconds * scale) and seconds <= float(cap) + 1e-9
    assert figures.downtime_seconds == pytest.approx(estimate.downtime_seconds * scale)
    assert figures.transferred_bytes == int(estimate.transferred_bytes)


def test_a_move_takes_the_modelled_time_and_the_target_continues_the_trace(tmp_path, trace):
    source, target = sim(tmp_path, "a"), sim(tmp_path, "b")

    async def scenario() -> None:
        await source.start(spec(trace, speed="60", migration_max_seconds="0.3", offset_seconds="120"))
        moved = source.migrate_out_spec("s1")
        assert float(moved.params["anchor_at"]) == T0 and float(moved.params["offset_seconds"]) == 120.0
        await target.migrate_in_prepare(moved, tmp_path / "staging")
        move = Move()
        loop = asyncio.get_running_loop()
        started = loop.time()
        figures = await source.migrate_out_transfer("s1", move)
        assert loop.time() - started >= 0.29 and move.ratios[-1] == 1.0 and move.points == ["transfer"]
        assert figures.downtime_seconds is not None and figures.downtime_seconds > 0
        await target.migrate_in_switch(moved, tmp_path / "staging")
        for t in (T0, T0 + 33.3, T0 + 5000):
            assert target.usage("s1", t).cpu_cores_used == source.usage("s1", t).cpu_cores_used
        await source.migrate_out_remove("s1")
        assert source.list() == [] and [i.spec.workload_id for i in target.list()] == ["s1"]

    asyncio.run(scenario())


def test_a_bad_cap_is_refused(tmp_path, trace):
    with pytest.raises(InvalidSpec, match="migration_max_seconds"):
        asyncio.run(sim(tmp_path, "a").start(spec(trace, migration_max_seconds="0")))


def test_prepare_refuses_a_trace_the_target_cannot_load(tmp_path, trace):
    bad = WorkloadSpec("s1", "vm", "sim", params={"trace": str(tmp_path / "missing.csv"), "series": "a"})
    with pytest.raises(InvalidSpec):
        asyncio.run(sim(tmp_path, "b").migrate_in_prepare(bad, tmp_path / "staging"))
