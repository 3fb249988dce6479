"""The ``sim`` driver: simulated workloads whose usage follows a real trace.

A sim workload runs nothing. Its CPU at wall instant ``now`` is the trace's CPU percent at trace
time ``offset_seconds + (now - anchor_at) * speed``, as cores: ``pct / 100 * cpu_cores`` (pct
clipped to 0..100). The trace is a step function (each step holds its value for
``step_seconds``, gaps hold the previous value) that repeats after its end. Usage is therefore a
pure function of ``now`` and the spec: the same spec read at the same instant gives the same
figures on every node and in every replay.

Params (all optional except ``trace`` and ``series``):

==================  ==========================================================================
trace               shared trace name (bitbrains, azure, azure-max, alibaba, alibaba-mem,
                    planetlab) or the path of a wide CSV (``.csv`` / ``.csv.gz``)
series              the column (VM id, machine id, ``<date>/<vm>`` for planetlab)
speed               trace seconds per wall second (time compression), default 1
offset_seconds      trace time at ``anchor_at``, default 0
anchor_at           wall instant (epoch s) at which the trace is at ``offset_seconds``;
                    default: when the workload started (set it to align many workloads)
step_seconds        sampling step of a CSV whose first column is a step index (default 300)
mem_used            used memory (``512M``), default the spec's memory
mem_trace,          memory as a percent of the spec's memory, from a series (``mem_trace``
mem_series          defaults to ``trace``); overrides ``mem_used``
io_bytes_per_second constant I/O rate (``10M`` allowed), default 0
migration_max_seconds
                    longest a modelled migration of this workload takes in wall time
                    (default 3: demos stay short)
==================  ==========================================================================

Migration (method ``simulated``): the duration, downtime and bytes come from the shared model
(:mod:`schemas.migration_model`) for the workload's memory, compressed by ``speed`` (a trace
played 60 times faster migrates 60 times faster) and capped at ``migration_max_seconds``. The target
starts the workload with the source's ``anchor_at`` and ``offset_seconds``, so its usage goes
on along the same trace instant for instant: a move never resets the trace.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agents.drivers import params as P
from agents.drivers.base import (
    KINDS,
    AlreadyExists,
    Driver,
    DriverContext,
    DriverError,
    IncomingPlan,
    InvalidSpec,
    MoveFigures,
    OutgoingMove,
    UnknownWorkload,
    Usage,
    WorkloadInfo,
    WorkloadSpec,
)
from agents.drivers.records import read_records, remove_workload_dir, write_record
from agents.drivers.trace_series import TraceSeries, load_series
from schemas.migration_model import MigrationModel

log = logging.getLogger(__name__)

KNOWN_PARAMS = frozenset(
    {
        "trace",
        "series",
        "speed",
        "offset_seconds",
        "anchor_at",
        "step_seconds",
        "mem_used",
        "mem_trace",
        "mem_series",
        "io_bytes_per_second",
        "migration_max_seconds",
    }
)
DEFAULT_MIGRATION_MAX_SECONDS = 3.0
PROGRESS_STEP_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class SimModel:
    """The usage of one sim workload as a function of wall time."""

    cpu: TraceSeries
    cpu_cores: float
    speed: float
    offset_seconds: float
    anchor_at: float
    mem_used_bytes: int
    memory_bytes: int
    io_bytes_per_second: float
    mem: TraceSeries | None = None

    def trace_seconds(self, now: float) -> float:
        return self.offset_seconds + (now - self.anchor_at) * self.speed

    def cpu_cores_used(self, now: float) -> float:
        pct = min(max(self.cpu.value_at(self.trace_seconds(now)), 0.0), 100.0)
        return pct / 100.0 * self.cpu_cores

    def mem_bytes_used(self, now: float) -> int:
        if self.mem is None:
            return self.mem_used_bytes
        pct = min(max(self.mem.value_at(self.trace_seconds(now)), 0.0), 100.0)
        return round(pct / 100.0 * self.memory_bytes)

    def usage(self, workload_id: str, now: float) -> Usage:
        return Usage(workload_id, now, self.cpu_cores_used(now), self.mem_bytes_used(now), self.io_bytes_per_second)


def build_model(spec: WorkloadSpec, started_at: float, traces_dir: str = "") -> SimModel:
    """Read and check a sim spec's params and load its series (may read files: call off-loop)."""
    unknown = sorted(set(spec.params) - KNOWN_PARAMS)
    if unknown:
        raise InvalidSpec(f"unknown param {unknown[0]!r} for driver sim; known: {', '.join(sorted(KNOWN_PARAMS))}")
    trace = P.text(spec, "trace")
    series = P.text(spec, "series")
    if not trace or not series:
        raise InvalidSpec("driver sim needs params trace (a shared trace name or a CSV path) and series (a column)")
    step = P.number(spec, "step_seconds", 0.0, positive=True) or None
    cpu = load_series(trace, series, traces_dir=traces_dir, step_seconds=step)
    mem: TraceSeries | None = None
    if P.text(spec, "mem_series"):
        mem = load_series(P.text(spec, "mem_trace") or trace, P.text(spec, "mem_series"), traces_dir=traces_dir)
    elif P.text(spec, "mem_trace"):
        raise InvalidSpec("param mem_trace needs mem_series (the column to follow)")
    P.number(spec, "migration_max_seconds", DEFAULT_MIGRATION_MAX_SECONDS, positive=True, maximum=3600)
    mem_used = P.size(spec, "mem_used", spec.memory_bytes)
    if mem_used > spec.memory_bytes:
        raise InvalidSpec(f"param mem_used: {mem_used} bytes is more than the workload's memory ({spec.memory_bytes})")
    io_raw = P.text(spec, "io_bytes_per_second")
    return SimModel(
        cpu=cpu,
        cpu_cores=spec.cpu_cores,
        speed=P.number(spec, "speed", 1.0, positive=True),
        offset_seconds=P.number(spec, "offset_seconds", 0.0, minimum=0.0),
        anchor_at=P.number(spec, "anchor_at", started_at, minimum=0.0),
        mem_used_bytes=mem_used,
        memory_bytes=spec.memory_bytes,
        io_bytes_per_second=float(P.size(spec, "io_bytes_per_second", 0)) if io_raw else 0.0,
        mem=mem,
    )


@dataclass(slots=True)
class _Sim:
    spec: WorkloadSpec
    model: SimModel
    started_at: float


class SimDriver(Driver):
    """Trace-driven simulated workloads of any kind; nothing runs, usage is computed."""

    name = "sim"
    kind = "vm"
    kinds = KINDS
    migration_method = "simulated"

    def __init__(
        self,
        ctx: DriverContext,
        clock: Callable[[], float] = time.time,
        migration_model: MigrationModel | None = None,
    ) -> None:
        super().__init__(ctx)
        self._clock = clock
        self._sims: dict[str, _Sim] = {}
        self._starting: set[str] = set()
        self.migration_model = migration_model or MigrationModel()

    def version(self) -> str:
        return "1"

    async def start(self, spec: WorkloadSpec) -> WorkloadInfo:
        wid = spec.workload_id
        if wid in self._sims or wid in self._starting:
            raise AlreadyExists(f"workload {wid!r} already runs on this node")
        self._starting.add(wid)
        try:
            started_at = self._clock()
            model = await asyncio.to_thread(build_model, spec, started_at, str(self.ctx.traces_dir))
            record = {"spec": spec.to_dict(), "started_at": started_at}
            await asyncio.to_thread(write_record, self.ctx.workload_dir(wid), record)
            self._sims[wid] = _Sim(spec, model, started_at)
        finally:
            self._starting.discard(wid)
        return self._info(self._sims[wid])

    async def stop(self, workload_id: str) -> None:
        if self._sims.pop(workload_id, None) is None:
            raise UnknownWorkload(f"no sim workload {workload_id!r} on this node")
        await asyncio.to_thread(remove_workload_dir, self.ctx.workload_dir(workload_id))

    def list(self) -> list[WorkloadInfo]:
        return [self._info(sim) for sim in self._sims.values()]

    def usage(self, workload_id: str, now: float) -> Usage:
        sim = self._sims.get(workload_id)
        if sim is None:
            raise UnknownWorkload(f"no sim workload {workload_id!r} on this node")
        return sim.model.usage(workload_id, now)

    def model(self, workload_id: str) -> SimModel:
        """The usage model of a workload (for modelled migrations and tests)."""
        sim = self._sims.get(workload_id)
        if sim is None:
            raise UnknownWorkload(f"no sim workload {workload_id!r} on this node")
        return sim.model

    async def recover(self) -> builtins.list[WorkloadInfo]:
        """Sim workloads survive a node restart: their usage depends only on the spec and time."""
        adopted: builtins.list[WorkloadInfo] = []
        for _directory, record, spec in await asyncio.to_thread(read_records, self.ctx, self.name):
            if spec.workload_id in self._sims:
                continue
            started_at = float(record.get("started_at", self._clock()))
            try:
                model = await asyncio.to_thread(build_model, spec, started_at, str(self.ctx.traces_dir))
            except DriverError as exc:
                log.warning("cannot resume sim workload %s: %s", spec.workload_id, exc)
                continue
            self._sims[spec.workload_id] = _Sim(spec, model, started_at)
            adopted.append(self._info(self._sims[spec.workload_id]))
        return adopted

    # ---- migration (modelled) ----------------------------------------------------------------

    def migrate_out_spec(self, workload_id: str) -> WorkloadSpec:
        """The spec with the trace anchor pinned, so the target continues the same trace instant."""
        sim = self._sims.get(workload_id)
        if sim is None:
            raise UnknownWorkload(f"no sim workload {workload_id!r} on this node")
        params = {
            **sim.spec.params,
            "anchor_at": repr(sim.model.anchor_at),
            "offset_seconds": repr(sim.model.offset_seconds),
        }
        return WorkloadSpec.from_dict({**sim.spec.to_dict(), "params": params})

    def migration_plan(self, workload_id: str, now: float) -> tuple[float, MoveFigures]:
        """(wall seconds the move takes, its figures) for ``workload_id`` at ``now``."""
        sim = self._sims.get(workload_id)
        if sim is None:
            raise UnknownWorkload(f"no sim workload {workload_id!r} on this node")
        estimate = self.migration_model.estimate("simulated", sim.model.mem_bytes_used(now))
        cap = P.number(sim.spec, "migration_max_seconds", DEFAULT_MIGRATION_MAX_SECONDS, positive=True)
        scale = 1.0 / sim.model.speed
        if estimate.duration_seconds * scale > cap:
            scale = cap / estimate.duration_seconds
        figures = MoveFigures(
            transferred_bytes=int(estimate.transferred_bytes),
            downtime_seconds=estimate.downtime_seconds * scale,
            message=f"modelled: {estimate.duration_seconds:.1f} s at trace speed, {scale:.3g}x in wall time",
        )
        return estimate.duration_seconds * scale, figures

    async def migrate_in_prepare(self, spec: WorkloadSpec, staging: Path) -> IncomingPlan:
        if spec.workload_id in self._sims or spec.workload_id in self._starting:
            raise AlreadyExists(f"workload {spec.workload_id!r} already runs on this node")
        await asyncio.to_thread(build_model, spec, self._clock(), str(self.ctx.traces_dir))  # the trace loads here
        return IncomingPlan()

    async def migrate_out_transfer(self, workload_id: str, move: OutgoingMove) -> MoveFigures:
        seconds, figures = self.migration_plan(workload_id, self._clock())
        started = time.monotonic()
        checkpoint_done = False
        while (elapsed := time.monotonic() - started) < seconds:
            ratio = elapsed / seconds if seconds > 0 else 1.0
            await move.progress(ratio, int(figures.transferred_bytes * ratio), figures.message)
            if ratio >= 0.5 and not checkpoint_done:
                move.checkpoint("transfer")
                checkpoint_done = True
            await asyncio.sleep(min(PROGRESS_STEP_SECONDS, max(seconds - elapsed, 0.0)))
        await move.progress(1.0, figures.transferred_bytes, figures.message)
        return figures

    async def migrate_in_switch(self, spec: WorkloadSpec, staging: Path) -> WorkloadInfo:
        sim = self._sims.get(spec.workload_id)
        if sim is not None:
            return self._info(sim)
        return await self.start(spec)

    async def migrate_in_abort(self, workload_id: str, staging: Path) -> None:
        if workload_id in self._sims:
            await self.stop(workload_id)

    async def migrate_out_rollback(self, workload_id: str, spec: WorkloadSpec) -> None:
        if workload_id not in self._sims:  # a sim never stops for a move; only a lost record needs this
            await self.start(spec)

    @staticmethod
    def _info(sim: _Sim) -> WorkloadInfo:
        return WorkloadInfo(spec=sim.spec, state="running", started_at=sim.started_at)
