"""The telemetry agent: samples a node and its workloads on a fixed schedule and publishes them.

Every ``interval`` seconds the agent publishes one node-usage record (totals, capacity,
fingerprint, hosted workload ids, executor endpoint) and one workload-usage record per hosted
workload (from ``node.usage_all(now)``, i.e. from the drivers), through a
:class:`~agents.producer.BufferedProducer`: publishing never blocks the sampling loop, and a
broker outage is absorbed by the producer's bounded buffer.

Node figures
------------
* A node **without** a configured capacity (``agents.node.Capacity.sliced`` false; for other
  node objects: a capacity at least as large as the host) reports the host's real utilization
  from psutil: CPU busy ratio over the interval (busy = total - idle - iowait, like
  ``psutil.cpu_percent``), memory used = total - available, disk read/write and network rx/tx
  (loopback excluded) as bytes/s over the interval.
* A node **with** a configured capacity (a slice of the host: several nodes sharing one host,
  ARCHITECTURE §7) reports the sum of its workloads' usage plus this process's own overhead (CPU, RSS, disk
  I/O), against that capacity — never the host-wide figures, so two nodes on one host never both
  claim the host's load. Drivers report one I/O figure per workload (disk + network), so the
  workloads' I/O is reported half as disk read, half as disk write; consumers sum the four rates.

Schedule
--------
Tick ``k`` is due at ``start + k * interval`` (monotonic clock): a late tick does not shift the
ones after it (no drift). When the loop falls more than one interval behind, it takes only the
latest due tick and counts the ones in between as skipped (no bunching). ``seq`` of every
record of tick ``k`` is ``start_ms + k`` (``start_ms``: wall-clock start in ms), so it strictly
increases per key across restarts, is consecutive within a run, and a gap means a skipped tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.drivers.base import Usage, WorkloadInfo
from agents.fingerprint import DriverLike, HostInfo, build_fingerprint, read_host
from agents.producer import BufferedProducer
from schemas import registry
from schemas.codec import codec
from schemas.errors import ContractError
from schemas.settings import Settings

__all__ = [
    "DEFAULT_IO_BYTES_PER_SECOND",
    "Counters",
    "NodeLike",
    "PsutilSampler",
    "TelemetryAgent",
    "Tick",
    "TickSchedule",
]

log = logging.getLogger(__name__)

# I/O capacity of a node that does not declare one: a nominal 1 GB/s (a local NVMe / 10 GbE).
DEFAULT_IO_BYTES_PER_SECOND = 1e9
_HOSTED_STATES = frozenset({"starting", "running", "migrating"})


# --- schedule ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Tick:
    index: int  # k: due at start + k * interval
    due: float  # monotonic
    skipped: int  # ticks passed over since the previous one taken


class TickSchedule:
    """Fixed-rate schedule without drift (see the module docstring). Time is an argument."""

    def __init__(self, start: float, interval: float) -> None:
        if not interval > 0 or not math.isfinite(interval):
            raise ValueError(f"interval must be a positive number of seconds, not {interval}")
        self.start = start
        self.interval = interval
        self.last = 0
        self.skipped_total = 0

    def due_at(self, index: int) -> float:
        return self.start + index * self.interval

    def wait_seconds(self, now: float) -> float:
        """Seconds until the next tick is due (0 when one is due now)."""
        return max(0.0, self.due_at(self.last + 1) - now)

    def take(self, now: float) -> Tick | None:
        """The tick to run at ``now``, or None if none is due yet."""
        nxt = self.last + 1
        if now < self.due_at(nxt):
            return None
        latest = max(nxt, int((now - self.start) // self.interval))
        while self.due_at(latest) > now:  # float rounding at an exact boundary
            latest -= 1
        latest = max(latest, nxt)
        skipped = latest - nxt
        self.last = latest
        self.skipped_total += skipped
        return Tick(latest, self.due_at(latest), skipped)


# --- host counters --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative counters at one instant (monotonic ``at``); rates are differences of two."""

    at: float
    cpu_busy_seconds: float
    cpu_total_seconds: float
    mem_total_bytes: int
    mem_used_bytes: int
    disk_read_bytes: int
    disk_write_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int
    proc_cpu_seconds: float  # this process (the node's own overhead)
    proc_rss_bytes: int
    proc_read_bytes: int
    proc_write_bytes: int


class Sampler(Protocol):
    def read(self) -> Counters: ...


class PsutilSampler:
    """Reads the host's and this process's counters with psutil."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, exclude_nics: Iterable[str] = ("lo",)) -> None:
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process()
        self._clock = clock
        self._exclude = frozenset(exclude_nics)

    def read(self) -> Counters:
        ps = self._psutil
        at = self._clock()
        t = ps.cpu_times()
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # guest is inside user
        busy = total - t.idle - getattr(t, "iowait", 0.0)
        vm = ps.virtual_memory()
        disk = ps.disk_io_counters()
        nics = ps.net_io_counters(pernic=True)
        rx = sum(c.bytes_recv for name, c in nics.items() if name not in self._exclude)
        tx = sum(c.bytes_sent for name, c in nics.items() if name not in self._exclude)
        with self._proc.oneshot():
            pt = self._proc.cpu_times()
            rss = self._proc.memory_info().rss
            try:
                pio = self._proc.io_counters()
                pr, pw = pio.read_bytes, pio.write_bytes
            except (ps.AccessDenied, AttributeError):
                pr = pw = 0
        return Counters(
            at=at,
            cpu_busy_seconds=busy,
            cpu_total_seconds=total,
            mem_total_bytes=vm.total,
            mem_used_bytes=vm.total - vm.available,
            disk_read_bytes=disk.read_bytes if disk else 0,
            disk_write_bytes=disk.write_bytes if disk else 0,
            net_rx_bytes=rx,
            net_tx_bytes=tx,
            proc_cpu_seconds=pt.user + pt.system,
            proc_rss_bytes=rss,
            proc_read_bytes=pr,
            proc_write_bytes=pw,
        )


def _rate(cur: float, prev: float, dt: float) -> float:
    # Counters can go backwards (a NIC removed, a wrapped counter): report 0, not a negative rate.
    return max(0.0, (cur - prev) / dt)


# --- the node seen by the agent -----------------------------------------------------------------
class CapacityLike(Protocol):
    @property
    def cpu_cores(self) -> float: ...
    @property
    def mem_bytes(self) -> int: ...
    @property
    def io_bytes_per_second(self) -> float | None: ...


class NodeLike(Protocol):
    """What the agent needs of a node (``agents.node.Node`` in the node process)."""

    @property
    def node_id(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def capacity(self) -> CapacityLike | None: ...
    @property
    def drivers(self) -> Mapping[str, DriverLike]: ...
    @property
    def endpoint(self) -> str | None: ...

    def list_workloads(self) -> Sequence[WorkloadInfo]: ...

    def usage_all(self, now: float) -> Mapping[str, Usage] | Iterable[Usage]: ...


@dataclass(frozen=True, slots=True)
class _Capacity:
    cpu_cores: float
    mem_bytes: int
    io_bytes_per_second: float
    sliced: bool  # smaller than the host: report workloads + overhead, not host figures


def _capacity(node: NodeLike, host: HostInfo) -> _Capacity:
    cap = node.capacity
    if cap is None:
        return _Capacity(float(host.logical_cores), host.mem_total_bytes, DEFAULT_IO_BYTES_PER_SECOND, False)
    cores, mem = float(cap.cpu_cores), int(cap.mem_bytes)
    io = float(cap.io_bytes_per_second or DEFAULT_IO_BYTES_PER_SECOND)
    if cores <= 0 or mem <= 0 or io <= 0:
        raise ValueError(f"node {node.node_id}: capacity must be positive, got {cores} cores, {mem} bytes, {io} B/s")
    # agents.node.Capacity says whether it was configured (a slice); otherwise compare with the host.
    declared = getattr(cap, "sliced", None)
    if declared is True or (declared is None and (cores < host.logical_cores or mem < host.mem_total_bytes)):
        return _Capacity(cores, mem, io, True)
    # At least the host: the host's own figures are the truth.
    return _Capacity(float(host.logical_cores), host.mem_total_bytes, io, False)


# --- the agent --------------------------------------------------------------------------------------
class TelemetryAgent:
    """Samples ``node`` every ``interval`` seconds and publishes through ``producer``.

    ``clock`` (wall, epoch seconds) and ``monotonic`` are injectable; ``sampler`` defaults to
    :class:`PsutilSampler`, ``host`` to :func:`~agents.fingerprint.read_host`. ``metrics`` is an
    optional :class:`agents.metrics.NodeMetrics`.
    """

    def __init__(
        self,
        node: NodeLike,
        settings: Settings,
        producer: BufferedProducer,
        *,
        interval: float | None = None,
        sampler: Sampler | None = None,
        host: HostInfo | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Any = None,
    ) -> None:
        self.node = node
        self.producer = producer
        self.interval = float(interval if interval is not None else settings.node_interval_seconds)
        if not self.interval > 0:
            raise ValueError(f"interval must be positive, not {self.interval}")
        self._clock = clock
        self._mono = monotonic
        self._sampler = sampler or PsutilSampler(clock=monotonic)
        self.host = host or read_host()
        self._metrics = metrics
        self._node_topic = registry.topic("node_usage", settings.topic_prefix)
        self._workload_topic = registry.topic("workload_usage", settings.topic_prefix)
        self._node_codec = codec("node_usage", max_bytes=settings.max_record_bytes)
        self._workload_codec = codec("workload_usage", max_bytes=settings.max_record_bytes)
        self._prev: Counters | None = None
        self._fingerprint: dict[str, Any] | None = None
        self._fingerprint_key: tuple[Any, ...] | None = None
        self.schedule: TickSchedule | None = None
        self.seq_base = 0
        self.samples = 0
        self.invalid = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def begin(self) -> TickSchedule:
        """Take the baseline reading and start the schedule now (``run`` does this)."""
        self._prev = self._sampler.read()
        self.schedule = TickSchedule(self._prev.at, self.interval)
        self.seq_base = int(self._clock() * 1000)
        return self.schedule

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set. Sampling is synchronous and short; publishing is buffered."""
        schedule = self.begin()
        while not stop.is_set():
            wait = schedule.wait_seconds(self._mono())
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                    return
                except TimeoutError:
                    pass
            tick = schedule.take(self._mono())
            if tick is not None:
                self.run_tick(tick)

    def run_tick(self, tick: Tick) -> int:
        """Sample and publish one tick; returns the number of records published."""
        started = self._mono()
        if tick.skipped and self._metrics is not None:
            self._metrics.record_skipped("overrun", tick.skipped)
        if tick.skipped:
            log.warning("node %s: %d sampling tick(s) skipped (the loop fell behind)", self.node.node_id, tick.skipped)
        published = 0
        for type_name, record in self.sample(tick):
            published += self._publish(type_name, record)
        if self._metrics is not None:
            self._metrics.sample_duration.observe(self._mono() - started)
        return published

    # -- sampling (no I/O beyond psutil and the drivers) ----------------------------------------
    def sample(self, tick: Tick) -> list[tuple[str, dict[str, Any]]]:
        """The records of one tick: workload-usage records, then the node-usage record."""
        if self._prev is None:
            self.begin()
        assert self._prev is not None
        cur = self._sampler.read()
        prev, self._prev = self._prev, cur
        dt = cur.at - prev.at
        if dt <= 0:
            return []
        now = self._clock()
        seq = self.seq_base + tick.index
        node = self.node
        cap = _capacity(node, self.host)
        infos = {w.spec.workload_id: w for w in node.list_workloads()}
        usages = self._usages(now)

        workload_records: list[tuple[str, dict[str, Any]]] = []
        sum_cpu = sum_io = 0.0
        sum_mem = 0
        gone = 0
        for u in usages:
            info = infos.get(u.workload_id)
            if info is None or info.state not in _HOSTED_STATES:
                gone += 1
                continue
            cpu, io = float(u.cpu_cores_used), float(u.io_bytes_per_second)
            if not (math.isfinite(cpu) and math.isfinite(io) and cpu >= 0 and io >= 0 and u.mem_used_bytes >= 0):
                # A driver bug: leave this workload out of the record and the node's sums.
                self._invalid(f"workload {u.workload_id}: bad usage {u!r}")
                continue
            mem = int(u.mem_used_bytes)
            sum_cpu, sum_mem, sum_io = sum_cpu + cpu, sum_mem + mem, sum_io + io
            spec = info.spec
            rec: dict[str, Any] = {
                "schema_version": 1,
                "workload_id": spec.workload_id,
                "node_id": node.node_id,
                "kind": spec.kind,
                "driver": spec.driver,
                "sampled_at": now,
                "interval_seconds": dt,
                "seq": seq,
                "cpu_cores_used": cpu,
                "cpu_ratio": min(1.0, cpu / cap.cpu_cores),
                "mem_used_bytes": mem,
                "io_bytes_per_second": io,
                "priority": spec.priority,
                "started_at": info.started_at,
            }
            if spec.app:
                rec["app"] = spec.app
            if spec.user:
                rec["user"] = spec.user
            workload_records.append(("workload_usage", rec))
        if gone and self._metrics is not None:
            self._metrics.record_skipped("workload_gone", gone)

        if cap.sliced:
            own_cpu = _rate(cur.proc_cpu_seconds, prev.proc_cpu_seconds, dt)
            own_read = _rate(cur.proc_read_bytes, prev.proc_read_bytes, dt)
            own_write = _rate(cur.proc_write_bytes, prev.proc_write_bytes, dt)
            cpu_ratio = (sum_cpu + own_cpu) / cap.cpu_cores
            mem_used = sum_mem + cur.proc_rss_bytes
            mem_total = cap.mem_bytes
            disk_read, disk_write = own_read + sum_io / 2, own_write + sum_io / 2
            net_rx = net_tx = 0.0
        else:
            busy = cur.cpu_busy_seconds - prev.cpu_busy_seconds
            total = cur.cpu_total_seconds - prev.cpu_total_seconds
            cpu_ratio = busy / total if total > 0 else 0.0
            mem_used, mem_total = cur.mem_used_bytes, cur.mem_total_bytes
            disk_read = _rate(cur.disk_read_bytes, prev.disk_read_bytes, dt)
            disk_write = _rate(cur.disk_write_bytes, prev.disk_write_bytes, dt)
            net_rx = _rate(cur.net_rx_bytes, prev.net_rx_bytes, dt)
            net_tx = _rate(cur.net_tx_bytes, prev.net_tx_bytes, dt)

        hosted = sorted(w for w, info in infos.items() if info.state in _HOSTED_STATES)
        node_record = {
            "schema_version": 1,
            "node_id": node.node_id,
            "sampled_at": now,
            "interval_seconds": dt,
            "seq": seq,
            "cpu_ratio": min(1.0, max(0.0, cpu_ratio)),
            "mem_used_bytes": min(max(0, int(mem_used)), mem_total),
            "mem_total_bytes": mem_total,
            "disk_read_bytes_per_second": disk_read,
            "disk_write_bytes_per_second": disk_write,
            "net_rx_bytes_per_second": net_rx,
            "net_tx_bytes_per_second": net_tx,
            "capacity": {
                "cpu_cores": cap.cpu_cores,
                "mem_bytes": cap.mem_bytes,
                "io_bytes_per_second": cap.io_bytes_per_second,
            },
            "fingerprint": self._fingerprint_for(cap),
            "workloads": hosted,
            "executor_endpoint": node.endpoint or None,
        }
        self.samples += 1
        if self._metrics is not None:
            self._metrics.samples_taken.labels("node").inc()
            self._metrics.samples_taken.labels("workload").inc(len(workload_records))
            by_driver: dict[str, int] = dict.fromkeys(node.drivers, 0)
            for wid in hosted:
                by_driver[infos[wid].spec.driver] = by_driver.get(infos[wid].spec.driver, 0) + 1
            self._metrics.set_hosted(by_driver)
        return [*workload_records, ("node_usage", node_record)]

    def _usages(self, now: float) -> list[Usage]:
        try:
            got = self.node.usage_all(now)
        except Exception:  # a driver bug must not stop the node's own telemetry
            log.exception("node %s: reading workload usage failed", self.node.node_id)
            if self._metrics is not None:
                self._metrics.record_skipped("driver_error")
            return []
        return list(got.values()) if isinstance(got, Mapping) else list(got)

    def _fingerprint_for(self, cap: _Capacity) -> dict[str, Any]:
        # Drivers and labels rarely change: rebuild only when they do (version() may be slow).
        drivers = self.node.drivers
        key = (cap.cpu_cores, cap.mem_bytes, tuple(sorted(drivers)), tuple(sorted(self.node.labels.items())))
        if self._fingerprint is None or key != self._fingerprint_key:
            self._fingerprint = build_fingerprint(
                self.host, cores=cap.cpu_cores, mem_bytes=cap.mem_bytes, drivers=drivers, labels=self.node.labels
            )
            self._fingerprint_key = key
        return self._fingerprint

    # -- publishing ------------------------------------------------------------------------------
    def _publish(self, type_name: str, record: dict[str, Any]) -> int:
        if type_name == "node_usage":
            c, topic, key = self._node_codec, self._node_topic, record["node_id"]
        else:
            c, topic, key = self._workload_codec, self._workload_topic, record["workload_id"]
        try:
            value = c.encode(record)
        except ContractError as exc:  # a driver or a label produced something the contract refuses
            self._invalid(f"not publishing an invalid {type_name} record: {exc}")
            return 0
        self.producer.send(topic, value, key=key)
        return 1

    def _invalid(self, message: str) -> None:
        self.invalid += 1
        log.error("node %s: %s", self.node.node_id, message)
        if self._metrics is not None:
            self._metrics.record_dropped("invalid")
